"""A video's segments in the real Weaviate: one multi-vector per space on the video's own object (MaxSim), added
to a collection made before videos, replaced whole by an upsert, gone with a delete."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import weaviate

from services.config import WeaviateSettings
from services.store import AssetObject, AssetStore, SearchQuery, VideoSegments, WriteRejected

pytestmark = pytest.mark.integration

SPACES = {"clip": 4, "clap": 3}
WITH_SEGMENTS = {**SPACES, "clip_segments": 4}


def unit(*xs: float) -> list[float]:
    v = np.asarray(xs, dtype=np.float64)
    return [float(x) for x in v / np.linalg.norm(v)]


def video(base: AssetObject, vectors: list[list[float]], times: list[float]) -> AssetObject:
    segments = VideoSegments(starts=tuple(times[:-1]), ends=tuple(times[1:]), vectors={"clip_segments": vectors},
                             duration_s=times[-1], playback=b"\x1aE\xdf\xa3webm", playback_mime="video/webm")
    mean = np.mean(np.asarray(vectors), axis=0)
    return replace(base, modality="video", uri=None, vectors={"clip": [float(x) for x in mean / np.linalg.norm(mean)]},
                   segments=segments)


async def test_segments_are_added_to_an_old_collection_and_searched_by_their_best(
    settings: WeaviateSettings, make_asset: Any
) -> None:
    async with AssetStore(settings, SPACES) as old:
        await old.ensure_collection()
        await old.write([make_asset("img-1")], [])
    async with AssetStore(settings, WITH_SEGMENTS) as store:
        await store.ensure_collection()  # adds clip_segments and the segment properties in place
        async with weaviate.use_async_with_custom(
            http_host=settings.host, http_port=settings.http_port, http_secure=False,
            grpc_host=settings.host, grpc_port=settings.grpc_port, grpc_secure=False,
        ) as client:
            config = await client.collections.use(settings.collection).config.get()
        index = (config.vector_config or {})["clip_segments"].vector_index_config
        assert getattr(index, "multi_vector", None) is not None and index.multi_vector.aggregation == "maxSim"
        assert (config.vector_config or {})["clip"].vector_index_config.multi_vector is None  # type: ignore[union-attr]

        segs = [unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 1, 0)]
        await store.write([video(make_asset("vid-1"), segs, [0.0, 1.0, 2.5, 4.0])], [])
        query = unit(0.1, 0.2, 1.0, 0.0)
        hits = await store.search(SearchQuery(vector=query, space="clip_segments", target="video", limit=5))
        assert [h.asset_id for h in hits] == ["vid-1"]  # the image has no segments: not a candidate
        [hit] = hits
        assert hit.score == pytest.approx(max(np.asarray(segs) @ query), abs=1e-5)  # MaxSim = the best dot
        best = hit.segments[0]
        assert (best.index, best.start_s, best.end_s) == (2, 2.5, 4.0)
        assert hit.has_playback and hit.duration_s == 4.0
        assert await store.playback("vid-1") == (b"\x1aE\xdf\xa3webm", "video/webm")

        # an upsert replaces every segment at once: two now, none of the three left
        fewer = [unit(0, 0, 0, 1), unit(1, 1, 0, 0)]
        await store.write([replace(video(make_asset("vid-1", minutes=1), fewer, [0.0, 2.0, 3.0]))], [])
        state = (await store.states(["vid-1"], with_vectors=True))["vid-1"]
        assert np.allclose(state.segments["clip_segments"], fewer, atol=1e-6)
        stored = await store.get("vid-1")
        assert stored is not None and stored.segments == ((0.0, 2.0), (2.0, 3.0))
        [hit] = await store.search(SearchQuery(vector=query, space="clip_segments", target="video", limit=5))
        assert len(hit.segments) == 2

        # an image replacing the video leaves no segment behind; a delete leaves nothing
        await store.write([make_asset("vid-1", minutes=2)], [])
        assert await store.search(SearchQuery(vector=query, space="clip_segments", limit=5)) == []
        assert (await store.states(["vid-1"], with_vectors=True))["vid-1"].segments == {}
        await store.write([video(make_asset("vid-2"), segs, [0.0, 1.0, 2.0, 3.0])], ["vid-1"])
        await store.write([], ["vid-2"])
        assert await store.search(SearchQuery(vector=query, space="clip_segments", limit=5)) == []
        assert set(await store.states(["vid-1", "vid-2"])) == set()


async def test_segments_that_disagree_with_their_times_are_refused(
    settings: WeaviateSettings, make_asset: Any
) -> None:
    async with AssetStore(settings, WITH_SEGMENTS) as store:
        await store.ensure_collection()
        bad = video(make_asset("vid-bad"), [unit(1, 0, 0, 0)], [0.0, 1.0, 2.0])  # one vector, two segments
        refused = await store.write([bad, make_asset("img-ok")], [])
        assert set(refused) == {"vid-bad"} and isinstance(refused["vid-bad"], WriteRejected)
        assert set(await store.states(["vid-bad", "img-ok"])) == {"img-ok"}
