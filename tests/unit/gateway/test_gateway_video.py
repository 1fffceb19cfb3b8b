"""Video results: segments best first with their time codes, the poster and the player's URL."""

from __future__ import annotations

from datetime import UTC, datetime

from services.gateway.models import SearchRequest
from services.gateway.query import result_of
from services.store.models import Hit, SegmentMatch
from services.store.reads import segment_matches

T = datetime(2026, 12, 2, tzinfo=UTC)


def video_hit(**extra: object) -> Hit:
    segments = (SegmentMatch(1, 2.0, 4.0, 0.6), SegmentMatch(0, 0.0, 2.0, 0.1))
    fields: dict[str, object] = {"asset_id": "clip 1", "score": 0.6, "modality": "video", "metadata": {},
                                 "text": None, "uri": None, "has_thumbnail": True, "event_time": T, "indexed_at": T,
                                 "segments": segments, "duration_s": 4.0, "has_playback": True} | extra
    return Hit(**fields)  # type: ignore[arg-type]


def test_a_video_result_carries_its_segments_poster_and_player() -> None:
    r = result_of(video_hit())
    assert r.start_s == 2.0 and r.duration_s == 4.0
    assert [(s.start_s, s.end_s) for s in r.segments or []] == [(2.0, 4.0), (0.0, 2.0)]
    assert r.preview == "/v1/assets/clip%201/thumbnail" and r.video == "/v1/assets/clip%201/video"


def test_without_playback_there_is_no_player_url() -> None:
    assert result_of(video_hit(has_playback=False)).video is None


def test_an_image_result_has_no_video_fields() -> None:
    r = result_of(video_hit(modality="image", segments=(), duration_s=None))
    assert r.segments is None and r.start_s is None and r.video is None


def test_segments_are_scored_against_the_query_best_first() -> None:
    props = {"segment_starts": [0.0, 1.0, 3.0], "segment_ends": [1.0, 3.0, 4.0]}
    matches = segment_matches(props, [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], [0.0, 1.0])
    assert [(m.index, m.start_s) for m in matches] == [(1, 1.0), (2, 3.0), (0, 0.0)]
    assert [round(m.score, 2) for m in matches] == [1.0, 0.8, 0.0]
    unscored = segment_matches(props, None, None)
    assert [m.index for m in unscored] == [0, 1, 2] and {m.score for m in unscored} == {0.0}


def test_a_video_search_request_validates() -> None:
    req = SearchRequest.model_validate({"text": "a blue circle", "target": "video", "granularity": "video"})
    assert req.target == "video" and req.granularity == "video"


def test_the_reranker_leaves_videos_in_their_retrieval_places() -> None:
    from services.gateway.rerank import candidate

    assert candidate(video_hit(), frozenset({"image", "text"})) is None
