"""Several vectors per asset, through the whole system: events with captions published to the real Kafka
(through the gateway's POST /v1/assets and straight to the topic), a real `xmodal worker` embedding them into
the real Weaviate, and the real gateway app searching them by part.

The catalogue: the shapes sample (2 images per colour/shape, one text each), half of the images captioned
with their colour ("something red"), plus ``mv-2``, an orange square captioned "a photo of an orange
square", and ``mv-1``, a green triangle captioned "a photo of a yellow star": its caption and its picture
say different things, so each part finds it by what that part holds.
"""

from __future__ import annotations

import base64
import io
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from services.config import GatewaySettings, ModelSettings
from services.embedding.model import HFEmbedder
from services.embedding.shapes import world
from services.gateway.server import create_app, started_deps
from services.publish import EventPublisher
from services.samples import shapes_sample
from services.store import AssetStore, vector_dims
from tests.harness.lanes import Lane, WorkerProcess, wait_stored

pytestmark = pytest.mark.integration

Client = TestClient[web.Request, web.Application]
Body = dict[str, Any]
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
CAPTION = "a photo of a yellow star"


def png(color: str, shape: str, seed: int) -> str:
    buf = io.BytesIO()
    world.draw_image(random.Random(seed), color, shape).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def similar(data: str) -> str:
    """The same picture as another file: scaled down and saved as a JPEG (a similar image, not the same)."""
    image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    buf = io.BytesIO()
    image.resize((56, 56)).save(buf, "JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode()


GREEN_TRIANGLE = png("green", "triangle", seed=31337)
ORANGE_SQUARE = png("orange", "square", seed=31337)


def mv_event(seconds: int, caption: str | None = CAPTION, *, asset_id: str = "mv-1", data: str = GREEN_TRIANGLE,
             **metadata: Any) -> Body:
    color, shape = ("green", "triangle") if data == GREEN_TRIANGLE else ("orange", "square")
    event = {"schema_version": 1, "asset_id": asset_id, "op": "upsert", "modality": "image", "data": data,
             "metadata": {"color": color, "shape": shape, **metadata},
             "event_time": (T0 + timedelta(seconds=seconds)).isoformat()}
    return event if caption is None else {**event, "caption": caption}


class System:
    def __init__(self, client: Client, lane: Lane, worker: WorkerProcess, dims: dict[str, int]) -> None:
        self.client, self.lane, self.worker, self.dims = client, lane, worker, dims

    async def publish(self, event: Body) -> Body:
        resp = await self.client.post("/v1/assets", json=event)
        where: Body = await resp.json()
        assert resp.status == 202, where
        return where

    async def search(self, body: Body, *, after: Body | None = None, status: int = 200) -> Body:
        if after is not None:
            body = {**body, "consistent_with": [after], "consistency_timeout_s": 30.0}
        resp = await self.client.post("/v1/search", json=body)
        result: Body = await resp.json()
        assert resp.status == status, result
        if after is not None:
            assert result["consistency"]["satisfied"], result["consistency"]
        return result

    async def vectors(self) -> dict[str, list[float]]:
        async with AssetStore(self.lane.weaviate, self.dims) as store:
            states = await store.states(["mv-1"], with_vectors=True)
        return states["mv-1"].vectors

    def model_inputs(self, modality: str) -> float:
        return self.worker.metric("xmodal_model_inputs_total", modality=modality)


@pytest.fixture(scope="module")
async def system(stack: Any, tmp_path_factory: pytest.TempPathFactory,
                 shapes_embedder: HFEmbedder) -> AsyncIterator[System]:
    tmp = tmp_path_factory.mktemp("captions")
    lane = Lane(f"mv{random.randrange(16**8):08x}", Path(tmp), extra_env={"XMODAL_SPACES__CLAP__ENABLED": "false"})
    await lane.create_topics()
    catalogue = [e.model_copy(update={"caption": f"something {e.metadata['color']}"})
                 if e.modality == "image" and i % 2 == 0 else e
                 for i, e in enumerate(shapes_sample(per_class=2))]
    async with EventPublisher(lane.kafka) as pub:
        published = await pub.publish_many(catalogue)
    worker = WorkerProcess(lane)
    worker.start()
    settings = GatewaySettings(kafka=lane.kafka, weaviate=lane.weaviate, consistency_timeout_s=30.0,
                               spaces={"clip": ModelSettings(device="cpu"), "clap": {"enabled": False}},
                               rerank={"kind": "none"})
    try:
        await worker.wait_ready()
        await wait_stored(lane, published)
        async with started_deps(settings, [shapes_embedder]) as deps, \
                TestClient(TestServer(create_app(settings, deps))) as client:
            yield System(client, lane, worker, vector_dims([shapes_embedder]))
    finally:
        worker.stop()
        await lane.drop()


def ids(result: Body) -> list[str]:
    return [r["asset_id"] for r in result["results"]]


async def test_an_image_with_a_caption_is_found_by_its_caption_and_by_a_similar_image_once(system: System) -> None:
    caption = "a photo of an orange square"
    where = await system.publish(mv_event(0, caption, asset_id="mv-2", data=ORANGE_SQUARE))
    by_text = await system.search({"text": caption, "target": "image", "limit": 3}, after=where)
    assert by_text["part"] == "fused"
    assert ids(by_text).count("mv-2") == 1, ids(by_text)
    assert len(set(ids(by_text))) == len(ids(by_text))  # results are assets: none twice
    mine = next(r for r in by_text["results"] if r["asset_id"] == "mv-2")
    assert mine["caption"] == caption and set(mine["parts"]) == {"content", "caption"}
    assert mine["parts"]["caption"] > 0.95  # the caption is the query's own words

    by_image = await system.search({"image": {"data": similar(ORANGE_SQUARE)}, "target": "image", "limit": 3})
    assert by_image["part"] == "fused"
    assert ids(by_image).count("mv-2") == 1, ids(by_image)
    assert len(set(ids(by_image))) == len(ids(by_image))

    # any target: texts (no caption) and images (some with one) in one ranking, each asset once
    anything = await system.search({"text": caption, "target": "any", "limit": 20})
    assert ids(anything).count("mv-2") == 1 and len(set(ids(anything))) == 20


async def test_each_part_alone_finds_the_asset_by_what_that_part_holds(system: System) -> None:
    where = await system.publish(mv_event(1))
    by_caption = await system.search({"text": CAPTION, "target": "image", "part": "caption", "limit": 5},
                                     after=where)
    assert by_caption["part"] == "caption" and ids(by_caption)[0] == "mv-1"
    assert all(r.get("caption") for r in by_caption["results"])  # only captioned assets have that vector
    assert "parts" not in by_caption["results"][0]
    # fused, the caption alone lifts it into the first results of a query its picture does not answer
    fused = await system.search({"text": CAPTION, "target": "image", "limit": 5})
    assert fused["part"] == "fused" and ids(fused).count("mv-1") == 1, ids(fused)

    by_content = await system.search({"text": CAPTION, "target": "image", "part": "content", "limit": 5})
    assert by_content["part"] == "content" and "mv-1" not in ids(by_content)  # its picture is no star
    assert [r["metadata"]["shape"] for r in by_content["results"]][:2] == ["star", "star"]

    by_image = {"image": {"data": similar(GREEN_TRIANGLE)}, "target": "image", "part": "content", "limit": 3}
    assert "mv-1" in ids(await system.search(by_image))
    # (fused, a caption that contradicts the picture counts against it: a similar image alone may not
    # bring it into the first three, which is what part=content is for)

    texts = await system.search({"text": CAPTION, "target": "text", "part": "caption"}, status=400)
    assert "text assets have no captions" in texts["error"]["message"]

    # the same through the GET, an upload, and hybrid mode
    got = await (await system.client.get("/v1/search", params={"q": CAPTION, "target": "image",
                                                                 "part": "caption", "limit": "1"})).json()
    assert got["part"] == "caption" and ids(got) == ["mv-1"], got
    form = aiohttp.FormData()
    form.add_field("image", base64.b64decode(similar(GREEN_TRIANGLE)), filename="tile.jpg",
                   content_type="image/jpeg")
    for name, value in {"target": "image", "part": "content", "limit": "3"}.items():
        form.add_field(name, value)
    uploaded = await (await system.client.post("/v1/search/upload", data=form)).json()
    assert uploaded["part"] == "content" and "mv-1" in ids(uploaded), uploaded
    hybrid = await system.search({"text": CAPTION, "target": "image", "mode": "hybrid", "limit": 10})
    assert hybrid["part"] == "fused" and ids(hybrid).count("mv-1") == 1, ids(hybrid)
    asset = await (await system.client.get("/v1/assets/mv-1")).json()
    assert asset["caption"] == CAPTION and asset["spaces"] == ["clip", "clip_caption"], asset


async def test_uncaptioned_images_are_not_dropped_from_fused_searches(system: System) -> None:
    # (Weaviate's own multi-target joins drop objects that lack one of the target vectors)
    content = await system.search({"text": "a photo of a blue square", "target": "image", "part": "content",
                                   "limit": 2})
    blue_squares = ids(content)
    assert [r["metadata"]["shape"] for r in content["results"]] == ["square", "square"]
    uncaptioned = [r["asset_id"] for r in content["results"] if "caption" not in r]
    assert uncaptioned, "one of the two blue squares has no caption"
    fused = await system.search({"text": "a photo of a blue square", "target": "image", "limit": 10})
    assert fused["part"] == "fused" and set(blue_squares) <= set(ids(fused)), ids(fused)
    found = next(r for r in fused["results"] if r["asset_id"] == uncaptioned[0])
    assert set(found["parts"]) == {"content"}


async def test_a_caption_change_embeds_the_caption_only_and_metadata_nothing(system: System) -> None:
    where = await system.publish(mv_event(10))
    await system.search({"text": CAPTION, "limit": 1}, after=where)
    before, images, texts = await system.vectors(), system.model_inputs("image"), system.model_inputs("text")

    where = await system.publish(mv_event(11, price=5))  # metadata only
    await system.search({"text": CAPTION, "limit": 1}, after=where)
    assert (system.model_inputs("image"), system.model_inputs("text")) == (images, texts)
    assert await system.vectors() == before

    where = await system.publish(mv_event(12, caption="a photo of a purple circle"))
    found = await system.search({"text": "a photo of a purple circle", "target": "image", "part": "caption",
                                 "limit": 1}, after=where)
    assert ids(found) == ["mv-1"]
    assert (system.model_inputs("image"), system.model_inputs("text")) == (images, texts + 1)
    after = await system.vectors()
    assert after["clip"] == before["clip"] and after["clip_caption"] != before["clip_caption"]

    where = await system.publish(mv_event(13, caption=None))  # the caption goes, and its vector with it
    stored = await system.search({"text": "a photo of a purple circle", "target": "image", "part": "caption",
                                  "limit": 5}, after=where)
    assert "mv-1" not in ids(stored)
    assert set(await system.vectors()) == {"clip"}
    asset = await (await system.client.get("/v1/assets/mv-1")).json()
    assert "caption" not in asset and asset["spaces"] == ["clip"]
