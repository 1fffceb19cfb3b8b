"""Audio through the real gateway over the real Weaviate: both spaces in one collection (the shapes sample in
clip, the sounds sample in clap), the space chosen from the query and the target, previews that play."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import soundfile as sf  # type: ignore[import-untyped]
import soxr  # type: ignore[import-untyped]
from aiohttp.test_utils import TestClient, TestServer

from services.config import BUILTIN_SOUNDS_MODEL, GatewaySettings, ModelSettings
from services.embedding.model import HFEmbedder, load_embedder
from services.embedding.sounds import world
from services.gateway.routes import DEPS
from services.gateway.server import create_app, started_deps
from services.localstack import LocalStack
from services.store import AssetStore
from tests.harness.catalogue import index_shapes_sample, index_sounds_sample
from tests.integration.gateway.conftest import Client, _drop

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def client(stack: LocalStack, shapes_embedder: HFEmbedder) -> AsyncIterator[Client]:
    tag = uuid.uuid4().hex[:10]
    settings = GatewaySettings(
        weaviate=stack.s.weaviate.model_copy(update={"collection": f"Au{tag}"}),
        kafka=stack.s.kafka.model_copy(update={"topic": f"au-{tag}", "group_id": f"au-{tag}-workers"}),
    )
    sounds = load_embedder(ModelSettings(name=BUILTIN_SOUNDS_MODEL, space="clap", device="cpu"))
    try:
        async with AssetStore(settings.weaviate, {"clip": shapes_embedder.dim, "clap": sounds.dim}) as store:
            await index_shapes_sample(store, shapes_embedder, per_class=1)
            await index_sounds_sample(store, sounds, per_class=2)
        async with started_deps(settings, [shapes_embedder, sounds]) as deps, \
                TestClient(TestServer(create_app(settings, deps))) as c:
            yield c
    finally:
        await _drop(settings)


def clip_of(label: str) -> bytes:
    """A clip of that class the index has never seen (another seed), as WAV at 44.1 kHz stereo."""
    sample = next(s for s in world.generate_balanced(1, seed=77, split="val") if s.label == label)
    stereo = soxr.resample(sample.audio, world.SAMPLING_RATE, 44_100)
    buf = io.BytesIO()
    sf.write(buf, [[x, x] for x in stereo], 44_100, format="WAV", subtype="PCM_16")
    return buf.getvalue()


async def upload(client: Client, audio: bytes, target: str) -> Any:
    form = aiohttp.FormData()
    form.add_field("audio", audio, filename="clip.wav", content_type="audio/wav")
    form.add_field("target", target)
    form.add_field("limit", "3")
    resp = await client.post("/v1/search/upload", data=form)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_text_to_audio_is_answered_in_clap_with_playable_previews(client: Client) -> None:
    resp = await client.get("/v1/search", params={"q": "three short high beeps", "target": "audio", "limit": 3})
    body = await resp.json()
    assert resp.status == 200 and body["space"] == "clap" and body["model"] == BUILTIN_SOUNDS_MODEL
    captions = [r["metadata"]["caption"] for r in body["results"]]
    assert captions[0] == "three short high beeps" and len(captions) == 3
    preview = body["results"][0]["preview"]
    assert preview.endswith("/preview")
    whole = await client.get(preview)
    data = await whole.read()
    assert whole.content_type == "audio/ogg" and data.startswith(b"OggS")
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = await client.get(preview, headers={"Range": "bytes=0-99"})
    assert part.status == 206 and await part.read() == data[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(data)}"
    tail = await client.get(preview, headers={"Range": "bytes=-50"})  # how a browser reads the duration
    assert tail.status == 206 and await tail.read() == data[-50:]


async def test_text_to_image_is_still_answered_in_clip(client: Client) -> None:
    body = await (await client.get("/v1/search", params={"q": "a photo of a red circle", "target": "image"})).json()
    assert body["space"] == "clip"
    assert (body["results"][0]["metadata"]["color"], body["results"][0]["metadata"]["shape"]) == ("red", "circle")


async def test_an_uploaded_clip_finds_its_kind_and_its_caption(client: Client) -> None:
    clip = clip_of("a rising siren")
    clips = await upload(client, clip, "audio")
    assert clips["space"] == "clap"
    assert all(r["modality"] == "audio" for r in clips["results"])
    assert clips["results"][0]["metadata"]["caption"] == "a rising siren"
    texts = await upload(client, clip, "text")
    assert texts["results"][0]["metadata"]["caption"] == "a rising siren"


async def test_audio_as_base64_json_and_a_bad_clip(client: Client) -> None:
    ok = await client.post("/v1/search", json={"audio": {"data": base64.b64encode(clip_of("white noise")).decode()},
                                               "target": "audio", "limit": 1})
    assert ok.status == 200 and (await ok.json())["results"][0]["metadata"]["caption"] == "white noise"
    bad = await client.post("/v1/search", json={"audio": {"data": base64.b64encode(b"not audio").decode()},
                                                "target": "audio"})
    error = (await bad.json())["error"]
    assert bad.status in (400, 422) and error["code"] == "undecodable", error


async def test_a_query_no_space_answers_is_a_400_that_lists_the_spaces(client: Client) -> None:
    png = await (await client.get("/v1/assets/shape-red-circle-0000/thumbnail")).read()
    resp = await client.post("/v1/search", json={"image": {"data": base64.b64encode(png).decode()},
                                                 "target": "audio"})
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["code"] == "no_space"
    assert "clip (image, text)" in error["message"] and "clap (audio, text)" in error["message"]


async def test_readyz_names_every_space(client: Client) -> None:
    body = await (await client.get("/readyz")).json()
    assert body["spaces"] == {"clip": "builtin:shapes-clip", "clap": BUILTIN_SOUNDS_MODEL}


async def test_a_request_may_name_the_space_that_answers(client: Client) -> None:
    chosen = await client.post("/v1/search", json={"text": "a rising siren", "space": "clap", "limit": 1})
    body = await chosen.json()
    assert chosen.status == 200 and body["space"] == "clap" and body["results"][0]["modality"] in ("audio", "text")
    default = await (await client.post("/v1/search", json={"text": "a rising siren", "limit": 1})).json()
    assert default["space"] == "clip"  # target any: the first configured space that embeds text
    unable = await client.post("/v1/search", json={"text": "a red circle", "target": "image", "space": "clap"})
    error = (await unable.json())["error"]
    assert unable.status == 400 and error["code"] == "no_space" and "'clap' cannot answer" in error["message"]
    unknown = await client.post("/v1/search", json={"text": "a red circle", "space": "siglip"})
    error = (await unknown.json())["error"]
    assert unknown.status == 400 and error["code"] == "no_space" and "not configured" in error["message"]


async def test_the_directions_setting_chooses_the_space_of_a_direction(client: Client) -> None:
    settings = GatewaySettings(directions={"text->any": "clap"})
    app = create_app(settings, client.app[DEPS])
    async with TestClient(TestServer(app)) as other:
        body = await (await other.post("/v1/search", json={"text": "a rising siren", "limit": 1})).json()
        assert body["space"] == "clap"
        image = await (await other.post("/v1/search", json={"text": "a red circle", "target": "image"})).json()
        assert image["space"] == "clip"  # a direction not named keeps the default choice
