"""Audio on the real stack: the sounds sample through a real worker, searched in the clap space; bad clips
become the right dead letters; a deployment without an audio space dead-letters audio as unsupported."""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf  # type: ignore[import-untyped]

from services.config import WorkerSettings
from services.embedding.model import HFEmbedder, load_embedder
from services.embedding.sounds import world
from services.publish import EventPublisher
from services.samples import shapes_sample, sounds_sample
from services.store import AssetStore, SearchQuery
from tests.harness.lanes import Lane, WorkerProcess, read_dead_letters, wait_stored

pytestmark = pytest.mark.integration
T = datetime(2026, 11, 27, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def embedders() -> dict[str, HFEmbedder]:
    return {name: load_embedder(space) for name, space in WorkerSettings().spaces.items()}


async def running_lane(name: str, tmp: Path, **env: str) -> tuple[Lane, WorkerProcess]:
    lane = Lane(name, tmp, extra_env=env)
    await lane.create_topics()
    worker = WorkerProcess(lane)
    worker.start()
    await worker.wait_ready()
    return lane, worker


@pytest.fixture(scope="module")
async def library(stack: Any, tmp_path_factory: pytest.TempPathFactory,
                  embedders: dict[str, HFEmbedder]) -> AsyncIterator[tuple[Lane, AssetStore]]:
    """The sounds sample (84 clips, 28 captions) and the shapes sample, ingested by one real worker."""
    import uuid

    lane, worker = await running_lane(f"t{uuid.uuid4().hex[:12]}", tmp_path_factory.mktemp("audio"))
    try:
        events = sounds_sample(per_class=3) + shapes_sample(per_class=1)
        async with EventPublisher(lane.kafka) as pub:
            await wait_stored(lane, await pub.publish_many(events))
        dims = {name: e.dim for name, e in embedders.items()}
        async with AssetStore(lane.weaviate, dims) as store:
            assert await store.count() == len(events)
            yield lane, store
            await store.drop_collection()
    finally:
        worker.stop()


async def search(store: AssetStore, vector: list[float], space: str, target: str, limit: int = 5) -> list[Any]:
    return await store.search(SearchQuery(vector=vector, space=space, target=target, limit=limit))


async def test_a_low_hum_finds_low_hums_first(library: tuple[Lane, AssetStore],
                                              embedders: dict[str, HFEmbedder]) -> None:
    _, store = library
    clap = embedders["clap"]
    for query in ("a low hum", "three short high beeps", "a rising siren", "white noise"):
        hits = await search(store, clap.embed_texts([query])[0].tolist(), "clap", "audio", limit=3)
        labels = [h.metadata["caption"] for h in hits]
        assert labels[0] == query and Counter(labels)[query] >= 2, (query, labels)


async def test_an_audio_query_finds_clips_of_its_kind_and_its_caption(
    library: tuple[Lane, AssetStore], embedders: dict[str, HFEmbedder]
) -> None:
    _, store = library
    clap = embedders["clap"]
    # clips the index has never seen (another seed), one per kind of sound
    queries = [s for s in world.generate_balanced(1, seed=99, split="val")
               if s.label in ("a low hum", "a falling siren", "brown noise", "two long low beeps")]
    right_kind = right_caption = 0
    for s in queries:
        vector = clap.embed_audio([s.audio])[0].tolist()
        clips = await search(store, vector, "clap", "audio", limit=1)
        right_kind += clips[0].metadata["category"] == s.sound.kind
        texts = await search(store, vector, "clap", "text", limit=1)
        right_caption += texts[0].metadata["caption"] == s.label
    assert right_kind == len(queries) == 4
    assert right_caption >= 3


async def test_a_text_asset_is_found_from_an_image_and_from_a_clip(
    library: tuple[Lane, AssetStore], embedders: dict[str, HFEmbedder]
) -> None:
    _, store = library
    clip, clap = embedders["clip"], embedders["clap"]
    states = await store.states(["text-a-low-hum", "text-red-circle", "sound-a-low-hum-0000"], with_vectors=True)
    assert set(states["text-a-low-hum"].vectors) == {"clip", "clap"}  # a text lives in both spaces
    assert set(states["sound-a-low-hum-0000"].vectors) == {"clap"}
    red_circle = await store.vector_of("shape-red-circle-0000", "clip")
    assert red_circle is not None
    [hit] = await search(store, red_circle, "clip", "text", limit=1)
    assert hit.asset_id == "text-red-circle"
    hum = states["sound-a-low-hum-0000"].vectors["clap"]
    [hit] = await search(store, hum, "clap", "text", limit=1)
    assert hit.asset_id == "text-a-low-hum"
    assert json.loads((await store.get("text-a-low-hum")).model_id) == {  # type: ignore[union-attr]
        "clip": clip.model_id, "clap": clap.model_id}


def audio_event(asset_id: str, raw: bytes) -> dict[str, Any]:
    return {"schema_version": 1, "asset_id": asset_id, "op": "upsert", "modality": "audio",
            "data": base64.b64encode(raw).decode(), "event_time": T.isoformat()}


def encoded(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


async def test_bad_audio_becomes_the_right_dead_letter_and_the_rest_is_stored(
    stack: Any, unique_name: str, tmp_path: Path
) -> None:
    good = {
        "snd-8ch-192k": encoded(tone(0.1, 192_000, channels=8), 192_000, subtype="PCM_24"),  # 460 KB inline
        "snd-24bit": encoded(tone(1.0, 44_100), 44_100, subtype="PCM_24"),
        "snd-u8": encoded(tone(1.0, 8_000), 8_000, subtype="PCM_U8"),
        "snd-silence": encoded(np.zeros(16_000, np.float32), 16_000, subtype="PCM_16"),
        "snd-flac": encoded(tone(1.0, 22_050), 22_050, fmt="FLAC"),
        "snd-mp3": encoded(tone(1.0, 44_100), 44_100, fmt="MP3"),
    }
    flac_10h = bytearray(encoded(tone(1.0, 16_000), 16_000, fmt="FLAC"))
    # STREAMINFO's 36-bit total-samples field (bytes 21..25 of the file): claim 10 hours
    total = 10 * 3600 * 16_000
    flac_10h[21] = (flac_10h[21] & 0xF0) | (total >> 32)
    flac_10h[22:26] = (total & 0xFFFFFFFF).to_bytes(4, "big")
    bad = {
        "bad-empty": (b"", "undecodable"),
        "bad-text-as-wav": (b"this is a text file renamed to .wav\n" * 20, "undecodable"),
        "bad-corrupt-header": (b"RIFF\x24\x08\x00\x00WAVEfmt " + b"\xff" * 40, "undecodable"),
        "bad-10-hours": (bytes(flac_10h), "too_large"),
        "bad-too-long": (encoded(tone(20.0, 8_000), 8_000, subtype="PCM_16"), "too_large"),
    }
    lane, worker = await running_lane(unique_name, tmp_path, XMODAL_FETCH__MAX_AUDIO_SECONDS="15")
    try:
        events = [audio_event(a, raw) for a, raw in good.items()] + [audio_event(a, raw) for a, (raw, _) in
                                                                     bad.items()]
        async with EventPublisher(lane.kafka) as pub:
            await wait_stored(lane, await pub.publish_many_raw(
                [(e["asset_id"].encode(), json.dumps(e).encode()) for e in events]))
        letters = await read_dead_letters(lane, expected=len(bad))
        async with AssetStore(lane.weaviate, {"clap": 1}) as store:
            stored = set(await store.states([*good, *bad]))
            await store.drop_collection()
    finally:
        worker.stop()
    assert {dl["_key"].decode(): dl["reason"] for dl in letters} == {a: reason for a, (_, reason) in bad.items()}
    assert stored == set(good)


async def test_without_an_audio_space_audio_is_unsupported(stack: Any, unique_name: str, tmp_path: Path) -> None:
    lane, worker = await running_lane(unique_name, tmp_path, XMODAL_SPACES__CLAP__ENABLED="false")
    try:
        event = audio_event("snd-1", encoded(tone(1.0, 16_000), 16_000, subtype="PCM_16"))
        async with EventPublisher(lane.kafka) as pub:
            await wait_stored(lane, await pub.publish_many_raw([(b"snd-1", json.dumps(event).encode())]))
        [letter] = await read_dead_letters(lane, expected=1)
    finally:
        worker.stop()
        async with AssetStore(lane.weaviate, {"clip": 1}) as store:
            await store.drop_collection()
    assert letter["reason"] == "unsupported_modality"
    assert "no embedding space" in letter["error"] and "clip" in letter["error"]
