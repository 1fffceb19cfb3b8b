"""Video decoding: the segment rule on the sample clips, the limits, and bad files as dead-letter reasons."""

from __future__ import annotations

import hashlib

import pytest

from schemas.dead_letter import Reason
from services.fetch.errors import FetchError
from services.fetch.video import VideoLimits, decode_video
from services.video_samples import CLIPS, ClipScript, clip_bytes, encode_webm, frames
from tests.harness.videos import audio_only, claims_hours, unknown_codec


def reason(raw: bytes, limits: VideoLimits | None = None) -> tuple[Reason, str]:
    with pytest.raises(FetchError) as info:
        decode_video(raw, limits=limits or VideoLimits(), audio_rate=16_000)
    return info.value.reason, str(info.value)


@pytest.mark.parametrize("script", CLIPS, ids=lambda s: s.asset_id)
def test_segments_start_where_the_colour_changes(script: ClipScript) -> None:
    video = decode_video(clip_bytes(script), limits=VideoLimits(), audio_rate=16_000)
    assert [s.start_s for s in video.segments] == [0.0, script.change_s]
    assert video.segments[0].end_s == script.change_s and video.segments[-1].end_s == video.duration_s
    assert video.duration_s == pytest.approx(script.duration_s, abs=0.05)
    assert video.audio is not None and len(video.audio) == pytest.approx(16_000 * script.duration_s, rel=0.02)
    assert [len(a) for a in (video.segment_audio(0), video.segment_audio(1))] == pytest.approx(
        [16_000 * script.change_s, 16_000 * (script.duration_s - script.change_s)], rel=0.03)
    assert video.mime == "video/webm" and video.codec == "vp9"


def test_a_long_shot_is_cut_every_max_segment_seconds_and_the_count_is_bounded() -> None:
    still = ClipScript("circle", "red", "red", 99.0, duration_s=6.0)  # no change at all
    raw = clip_bytes(still, with_sound=False)
    assert [s.start_s for s in decode_video(raw, limits=VideoLimits(max_segment_s=2.0)).segments] == [0, 2, 4]
    capped = decode_video(raw, limits=VideoLimits(max_segment_s=1.0, max_segments=3)).segments
    assert [s.start_s for s in capped] == [0, 1, 2] and capped[-1].end_s == pytest.approx(6.0, abs=0.05)


def test_without_a_rate_the_sound_is_not_decoded() -> None:
    video = decode_video(clip_bytes(CLIPS[0]), limits=VideoLimits())
    assert video.audio is None and video.segment_audio(0) is None


def test_the_generator_is_deterministic() -> None:
    digests = {hashlib.sha256(clip_bytes(CLIPS[3])).hexdigest() for _ in range(2)}
    assert len(digests) == 1


@pytest.mark.parametrize(("name", "raw", "want", "says"), [
    ("empty", b"", Reason.undecodable, "empty"),
    ("text", b"not a video at all\n" * 30, Reason.undecodable, "not a readable video"),
    ("audio only", audio_only(), Reason.undecodable, "no video stream (it holds only sound"),
    ("four hours", claims_hours(4.0), Reason.too_large, "its header says 14400"),
    ("unknown codec", unknown_codec(), Reason.undecodable, "no decoder for this video's codec"),
])
def test_bad_files_become_the_right_reason(name: str, raw: bytes, want: Reason, says: str) -> None:
    got, message = reason(raw)
    assert got is want and says in message, (name, message)


def test_a_truncated_file_is_undecodable_whether_cut_early_or_late() -> None:
    raw = clip_bytes(CLIPS[0])
    for cut in (200, len(raw) // 2):
        got, message = reason(raw[:cut])
        assert got is Reason.undecodable, message
    assert "truncated" in reason(raw[: len(raw) // 2])[1]


def test_limits_are_checked_before_and_while_decoding() -> None:
    raw = clip_bytes(CLIPS[0], with_sound=False)
    assert reason(raw, VideoLimits(max_bytes=1000))[0] is Reason.too_large
    assert "header says" in reason(raw, VideoLimits(max_seconds=3.0))[1]
    assert "pixels" in reason(raw, VideoLimits(max_pixels=32 * 32))[1]
    assert "frames" in reason(raw, VideoLimits(max_frames=10))[1]


def test_an_odd_size_decodes_too() -> None:
    images = [f.resize((96, 54)) for f in frames(CLIPS[1])[:8]]
    video = decode_video(encode_webm(images), limits=VideoLimits())
    assert video.width == 96 and video.height == 54 and video.segments[0].keyframe.size == (96, 54)


def test_a_sound_track_without_a_decoder_leaves_the_frames_searchable() -> None:
    raw = clip_bytes(CLIPS[0])
    assert raw.count(b"A_OPUS") == 1
    video = decode_video(raw.replace(b"A_OPUS", b"A_ZZUS"), limits=VideoLimits(), audio_rate=16_000)
    assert len(video.segments) == 2 and video.audio is None
