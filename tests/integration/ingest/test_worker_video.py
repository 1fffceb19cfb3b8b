"""Video on the real stack: the clips sample through a real worker and a real gateway; text and image queries
find the right clip at the right time; updates and deletes leave exactly the new segments or nothing; bad
videos become the right dead letters while the rest of their batch is stored."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.config import WorkerSettings
from services.embedding.model import HFEmbedder, load_embedder
from services.fetch.video import VideoLimits, decode_video
from services.publish import EventPublisher
from services.samples import shapes_sample
from services.store import AssetStore, vector_dims
from services.video_samples import CLIPS, ClipScript, clip_bytes, clips_sample, frames
from tests.harness.gateways import GatewayProcess, start_gateway, wait_ready
from tests.harness.lanes import Lane, WorkerProcess, read_dead_letters, wait_stored
from tests.harness.videos import audio_only, claims_hours, unknown_codec

pytestmark = pytest.mark.integration
T = datetime(2026, 12, 2, 10, tzinfo=UTC)


@dataclass
class Library:
    lane: Lane
    store: AssetStore
    gateway: GatewayProcess
    http: aiohttp.ClientSession

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(f"{self.gateway.url}/v1/search", json=body) as resp:
            result: dict[str, Any] = await resp.json()
            assert resp.status == 200, result
            return result

    async def publish(self, events: list[dict[str, Any]]) -> None:
        async with EventPublisher(self.lane.kafka) as pub:
            await wait_stored(self.lane, await pub.publish_many_raw(
                [(e["asset_id"].encode(), json.dumps(e).encode()) for e in events]))


@pytest.fixture(scope="module")
def embedders() -> dict[str, HFEmbedder]:
    return {name: load_embedder(space) for name, space in WorkerSettings().spaces.items()}


@pytest.fixture(scope="module")
async def library(stack: Any, tmp_path_factory: pytest.TempPathFactory,
                  embedders: dict[str, HFEmbedder]) -> AsyncIterator[Library]:
    """The clips sample (6 videos with sound) and a few shape pictures, by a real worker; a real gateway."""
    lane = Lane(f"t{uuid.uuid4().hex[:12]}", tmp_path_factory.mktemp("video"))
    await lane.create_topics()
    worker = WorkerProcess(lane)
    worker.start()
    gateway: GatewayProcess | None = None
    try:
        await worker.wait_ready()
        events = clips_sample(now=T) + shapes_sample(per_class=1, now=T)
        async with EventPublisher(lane.kafka) as pub:
            await wait_stored(lane, await pub.publish_many(events))
        gateway = start_gateway(lane)
        await wait_ready(gateway)
        async with AssetStore(lane.weaviate, vector_dims(embedders.values())) as store, \
                aiohttp.ClientSession() as http:
            assert await store.count() == len(events)
            yield Library(lane, store, gateway, http)
    finally:
        if gateway is not None:
            gateway.stop()
        worker.stop()
        await lane.drop()


def video_event(asset_id: str, raw: bytes, when: datetime = T, **extra: Any) -> dict[str, Any]:
    return {"schema_version": 1, "asset_id": asset_id, "op": "upsert", "modality": "video",
            "data": base64.b64encode(raw).decode(), "event_time": when.isoformat(), **extra}


def png_b64(script: ClipScript, index: int) -> str:
    buf = io.BytesIO()
    frames(script, seed=77)[index].save(buf, "PNG")  # another seed: a frame the index has never seen
    return base64.b64encode(buf.getvalue()).decode()


async def test_each_clip_is_one_object_with_its_segments_and_both_spaces(library: Library) -> None:
    for script in CLIPS:
        stored = await library.store.get(script.asset_id)
        assert stored is not None and stored.modality == "video"
        # the segment rule cuts where the colour changes (services/fetch/video.py)
        assert [round(s, 3) for s, _ in stored.segments] == [0.0, script.change_s]
        assert stored.segments[-1][1] == pytest.approx(4.0, abs=0.05)
        assert {"clip", "clip_segments", "clap", "clap_segments"} <= set(stored.spaces)
        assert stored.has_playback and stored.has_thumbnail
    state = (await library.store.states([CLIPS[0].asset_id], with_vectors=True))[CLIPS[0].asset_id]
    assert {name: len(v) for name, v in state.segments.items()} == {"clip_segments": 2, "clap_segments": 2}


async def test_a_text_query_finds_the_clip_and_the_time_it_turns(library: Library) -> None:
    for script in CLIPS:
        for t in (0.5, 3.5):
            result = await library.search({"text": f"a photo of {script.caption_at(t)}", "target": "video",
                                           "limit": 3})
            top = result["results"][0]
            assert top["asset_id"] == script.asset_id, (script.caption_at(t), [r["asset_id"] for r in
                                                                                 result["results"]])
            best = top["segments"][0]
            assert best["start_s"] <= t < best["end_s"], (script.caption_at(t), top["segments"])
            assert top["start_s"] == best["start_s"]
            assert top["preview"] == f"/v1/assets/{script.asset_id}/thumbnail"
            assert top["video"] == f"/v1/assets/{script.asset_id}/video"
            assert result["space"] == "clip"
            # one result per video, every one a video
            ids = [r["asset_id"] for r in result["results"]]
            assert len(ids) == len(set(ids)) and {r["modality"] for r in result["results"]} == {"video"}


async def test_the_whole_video_granularity_ranks_videos_by_their_mean(library: Library) -> None:
    script = CLIPS[2]
    result = await library.search({"text": f"a photo of {script.caption_at(3.0)}", "target": "video",
                                   "granularity": "video", "limit": 6})
    assert result["results"][0]["asset_id"] == script.asset_id
    assert {r["modality"] for r in result["results"]} == {"video"}
    assert result["results"][0]["segments"][0]["start_s"] == script.change_s


async def test_an_image_of_a_frame_finds_its_clip_at_that_frame(library: Library) -> None:
    for script in CLIPS:
        index = 28  # 3.5 s in at 8 fps: after the change
        result = await library.search({"image": {"data": png_b64(script, index)}, "target": "video", "limit": 3})
        top = result["results"][0]
        assert top["asset_id"] == script.asset_id
        assert top["segments"][0]["start_s"] == script.change_s


async def test_the_sound_of_a_video_is_searched_in_the_audio_space(library: Library) -> None:
    result = await library.search({"text": "a high hum", "target": "video", "space": "clap", "limit": 6})
    assert result["space"] == "clap" and len(result["results"]) == len(CLIPS)
    for r in result["results"]:  # each clip hums low, then high from its change on
        script = next(s for s in CLIPS if s.asset_id == r["asset_id"])
        assert r["segments"][0]["start_s"] == script.change_s


async def test_image_searches_find_no_videos(library: Library) -> None:
    result = await library.search({"text": "a photo of a red circle", "target": "image", "limit": 10})
    assert {r["modality"] for r in result["results"]} == {"image"}


async def test_the_player_gets_the_file_and_byte_ranges(library: Library) -> None:
    url = f"{library.gateway.url}/v1/assets/{CLIPS[0].asset_id}/video"
    async with library.http.get(url) as resp:
        body = await resp.read()
        assert resp.status == 200 and resp.content_type == "video/webm"
    assert body == clip_bytes(CLIPS[0])  # the generator is deterministic: the stored file is the sample's
    async with library.http.get(url, headers={"Range": "bytes=0-99"}) as resp:
        assert resp.status == 206 and len(await resp.read()) == 100
    async with library.http.get(f"{library.gateway.url}/v1/assets/shape-red-circle-0000/video") as resp:
        assert resp.status == 404


async def test_an_update_replaces_every_segment_and_a_delete_removes_them(library: Library) -> None:
    store = library.store
    longer = ClipScript("star", "green", "blue", 3.0, duration_s=6.0)  # longer, cut elsewhere
    await library.publish([video_event("clip-edit", clip_bytes(CLIPS[0]))])
    first = await store.get("clip-edit")
    assert first is not None and len(first.segments) == 2
    await library.publish([video_event("clip-edit", clip_bytes(longer), T + timedelta(seconds=1))])
    after = await store.get("clip-edit")
    state = (await store.states(["clip-edit"], with_vectors=True))["clip-edit"]
    expected = decode_video(clip_bytes(longer), limits=VideoLimits(), audio_rate=16_000).segments
    assert after is not None
    assert [round(s, 3) for s, _ in after.segments] == [round(s.start_s, 3) for s in expected]
    assert {name: len(v) for name, v in state.segments.items()} == {
        "clip_segments": len(expected), "clap_segments": len(expected)}
    # nothing of the red circle is left: its best match for "a red circle" is no longer this clip
    result = await library.search({"text": "a photo of a red circle", "target": "video", "limit": 10})
    edit = next(r for r in result["results"] if r["asset_id"] == "clip-edit")
    assert [(s["start_s"], s["end_s"]) for s in sorted(edit["segments"], key=lambda s: s["start_s"])] == [
        (round(s.start_s, 3), round(s.end_s, 3)) for s in expected]
    await library.publish([{"schema_version": 1, "asset_id": "clip-edit", "op": "delete",
                            "event_time": (T + timedelta(seconds=2)).isoformat()}])
    assert await store.get("clip-edit") is None
    result = await library.search({"text": "a photo of a green star", "target": "video", "limit": 10})
    assert "clip-edit" not in [r["asset_id"] for r in result["results"]]


async def test_bad_videos_become_the_right_dead_letters_and_the_rest_is_stored(
    stack: Any, unique_name: str, tmp_path: Path
) -> None:
    good = clip_bytes(CLIPS[1])
    bad = {
        "vid-empty": (b"", "undecodable"),
        "vid-truncated": (good[: len(good) // 2], "undecodable"),
        "vid-audio-only": (audio_only(), "undecodable"),
        "vid-4-hours": (claims_hours(4.0), "too_large"),
        "vid-text": (b"this is not a video\n" * 40, "undecodable"),
        "vid-no-codec": (unknown_codec(), "undecodable"),
    }
    lane = Lane(unique_name, tmp_path)
    await lane.create_topics()
    worker = WorkerProcess(lane)
    worker.start()
    try:
        await worker.wait_ready()
        events = [video_event("vid-good", good)] + [video_event(a, raw) for a, (raw, _) in bad.items()]
        async with EventPublisher(lane.kafka) as pub:
            await wait_stored(lane, await pub.publish_many_raw(
                [(e["asset_id"].encode(), json.dumps(e).encode()) for e in events]))
        letters = await read_dead_letters(lane, expected=len(bad))
        async with AssetStore(lane.weaviate, {"clip": 1}) as store:
            stored = set(await store.states(["vid-good", *bad]))
    finally:
        worker.stop()
        await lane.drop()
    assert {dl["_key"].decode(): dl["reason"] for dl in letters} == {a: reason for a, (_, reason) in bad.items()}
    errors = {dl["_key"].decode(): dl["error"] for dl in letters}
    assert "no video stream" in errors["vid-audio-only"] and "truncated" in errors["vid-truncated"]
    assert "14400" in errors["vid-4-hours"]
    assert stored == {"vid-good"}


async def test_video_searches_refuse_what_they_cannot_do(library: Library) -> None:
    for body, says in (({"mode": "hybrid"}, "vector only"), ({"part": "caption"}, "no captions")):
        async with library.http.post(f"{library.gateway.url}/v1/search",
                                     json={"text": "a red circle", "target": "video", **body}) as resp:
            error = (await resp.json())["error"]
            assert resp.status == 400 and says in error["message"], error


async def test_the_demo_sets_video_queries_are_answered_first_time(library: Library) -> None:
    """`xmodal eval`'s text -> video and image -> video queries, through the same runner, on this index."""
    from services.evaluation.demo import demo_set
    from services.evaluation.runner import run_queries

    labelled = demo_set(sounds=False)
    queries = labelled.of_direction("text->video") + labelled.of_direction("image->video")
    run = await run_queries(library.gateway.url, queries, api_key=None, k=3, progress=False)
    assert not run.failed and len(run.answered) == len(queries) == 24
    qrels = labelled.qrels
    first = {a.qid: a.ranking[0] for a in run.answered}
    assert all(qrels[qid].get(top, 0) >= 1 for qid, top in first.items()), first  # R@1 = 1 in both directions
