"""Video bytes -> segments (start, end, keyframe) and, when asked, the mono sound track, bounded throughout.

Decoding is FFmpeg's, through PyAV (``av``), whose wheels bundle FFmpeg and its codecs (VP8/VP9, AV1, H.264,
MPEG-4, Opus, Vorbis, AAC, ...), so what decodes does not depend on the machine. Limits: ``max_bytes``
before anything is parsed; duration, frame size and frame count from the header before a frame is decoded;
and again on what is decoded, so a header that lies cannot make it run past them.

**Segments** (the documented rule). Frames are compared by their colour distributions (the earth mover's
distance per RGB channel of the frame read at 32x32, 0 to 1), so that motion alone changes little and a cut
or a change of colour a lot (on the sample clips motion stays under 0.02, a colour change of a fifth of the
frame is 0.03-0.12). A segment starts at the first frame; the next one starts at the first frame that is at
least ``min_segment_s`` after the current segment's start and either differs from the segment's keyframe by
at least ``scene_threshold`` or is ``max_segment_s`` after the start (a long shot is still sampled). The
segment's first frame is its keyframe. At most ``max_segments`` segments: the last one runs to the end. Each
segment ends where the next begins; the last at the end of the video.

**Bad files**: empty, not a video, a container without a video stream (an audio-only file: publish it as
modality audio), a stream without a decoder, corrupt data (FFmpeg errors), a file that decodes to no frame,
and a truncated one (its frames end well before the duration its header gives) are ``undecodable``; past a
limit is ``too_large``.

CPU-bound: callers on an event loop run :func:`decode_video` in a thread (FFmpeg releases the GIL).

>>> from services.video_samples import CLIPS, clip_bytes
>>> video = decode_video(clip_bytes(CLIPS[0]), limits=VideoLimits(), audio_rate=16000)
>>> [(round(s.start_s, 1), round(s.end_s, 1)) for s in video.segments], video.segments[0].keyframe.size
([(0.0, 2.0), (2.0, 4.0)], (64, 64))
>>> video.mime, video.audio is not None and round(len(video.audio) / 16000, 1)
('video/webm', 4.0)
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass

import av
import av.error
import numpy as np
import numpy.typing as npt
from PIL import Image

from schemas.dead_letter import Reason
from services.fetch.errors import FetchError
from services.monitoring import metrics

SIGNATURE_PX = 32
KEYFRAME_MAX_PX = 448  # keyframes are kept at most this big on the longer side (models read 224 or less)
# Playable by a browser's <video> as stored: WebM with VP8/VP9/AV1, MP4 with H.264/AV1 (Chromium, Firefox).
_PLAYABLE = {("webm", "vp8"): "video/webm", ("webm", "vp9"): "video/webm", ("webm", "av1"): "video/webm",
             ("mp4", "h264"): "video/mp4", ("mp4", "av1"): "video/mp4"}
_HINT = "send a WebM, MP4 or Matroska video"


@dataclass(frozen=True)
class VideoLimits:
    """Bounds of one decode (FetchSettings.max_video_*), and the segment rule (FetchSettings.segment_*)."""

    max_bytes: int = 64 * 1024 * 1024
    max_seconds: float = 600.0
    max_pixels: int = 1920 * 1080
    max_frames: int = 36_000
    scene_threshold: float = 0.025
    min_segment_s: float = 0.5
    max_segment_s: float = 10.0
    max_segments: int = 32


@dataclass(frozen=True, eq=False)
class Segment:
    start_s: float
    end_s: float
    keyframe: Image.Image  # RGB, at most KEYFRAME_MAX_PX on the longer side


@dataclass(frozen=True, eq=False)
class DecodedVideo:
    """A decoded video. ``audio`` is the sound track, mono float32 at ``audio_rate`` (None: no track, or no
    rate asked for). ``mime`` is set when a browser plays the file as it is."""

    segments: tuple[Segment, ...]
    duration_s: float
    width: int
    height: int
    codec: str
    mime: str | None
    audio: npt.NDArray[np.float32] | None = None
    audio_rate: int | None = None

    def segment_audio(self, index: int) -> npt.NDArray[np.float32] | None:
        """The sound of segment ``index`` (None without a track; at least one sample)."""
        if self.audio is None or self.audio_rate is None:
            return None
        seg = self.segments[index]
        lo = min(len(self.audio) - 1, max(0, math.floor(seg.start_s * self.audio_rate)))
        hi = max(lo + 1, min(len(self.audio), math.ceil(seg.end_s * self.audio_rate)))
        return self.audio[lo:hi]


def decode_video(raw: bytes, *, limits: VideoLimits, audio_rate: int | None = None) -> DecodedVideo:
    """Decode ``raw`` into its segments (and its sound at ``audio_rate`` Hz when given and present).

    Raises :class:`FetchError` ``too_large`` or ``undecodable`` (see the module's docstring). Observes
    ``xmodal_video_decode_seconds{outcome}`` and, for videos, ``xmodal_video_segments``.
    """
    t0 = time.perf_counter()
    outcome = "error"
    try:
        video = _decode(raw, limits, audio_rate)
    except FetchError as exc:
        outcome = exc.reason.value
        raise
    else:
        outcome = "ok"
        metrics.VIDEO_SEGMENTS.observe(len(video.segments))
        return video
    finally:
        metrics.VIDEO_DECODE_SECONDS.labels(outcome).observe(time.perf_counter() - t0)


def _decode(raw: bytes, limits: VideoLimits, audio_rate: int | None) -> DecodedVideo:
    if not raw:
        raise FetchError(Reason.undecodable, f"video content is empty (0 bytes); {_HINT}")
    if len(raw) > limits.max_bytes:
        raise FetchError(Reason.too_large, f"video file of {len(raw)} bytes; limit {limits.max_bytes} "
                         "(XMODAL_FETCH__MAX_VIDEO_BYTES); send a shorter or smaller clip")
    try:
        container = av.open(io.BytesIO(raw), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise FetchError(Reason.undecodable, f"not a readable video ({len(raw)} bytes; FFmpeg: {exc}); "
                         f"{_HINT}") from exc
    with container:
        if not container.streams.video:
            sound = " (it holds only sound: publish it as modality audio)" if container.streams.audio else ""
            raise FetchError(Reason.undecodable, f"{container.format.name} file has no video stream{sound}")
        stream = container.streams.video[0]
        header_s = _check_header(container, stream, limits)
        audio = container.streams.audio[0] if audio_rate is not None and container.streams.audio else None
        if audio is not None and not _decodable(audio):
            audio = None  # a sound track no decoder reads: the video is still searched by its frames
        try:
            return _read(container, stream, audio, audio_rate=audio_rate, header_s=header_s, limits=limits)
        except av.error.FFmpegError as exc:
            raise FetchError(Reason.undecodable, f"corrupt {stream.codec_context.name} video: {exc}") from exc


def _decodable(stream: av.AudioStream) -> bool:
    ctx = stream.codec_context
    return ctx is not None and ctx.codec is not None and bool(ctx.codec.is_decoder)


def _check_header(container: av.container.InputContainer, stream: av.VideoStream, limits: VideoLimits) -> float:
    """The duration the header gives (0: none), after checking it, the frame size and count against the limits."""
    ctx = stream.codec_context
    if ctx is None or ctx.codec is None or not ctx.codec.is_decoder:
        raise FetchError(Reason.undecodable, f"no decoder for this video's codec (not one the bundled FFmpeg "
                         f"knows); {_HINT} (VP8/VP9, AV1, H.264 or MPEG-4)")
    if ctx.width * ctx.height > limits.max_pixels:
        raise FetchError(Reason.too_large, f"video frames of {ctx.width}x{ctx.height}; at most {limits.max_pixels} "
                         "pixels (XMODAL_FETCH__MAX_VIDEO_PIXELS)")
    seconds = container.duration / av.time_base if container.duration else 0.0
    if not seconds and stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    if seconds > limits.max_seconds:
        raise FetchError(Reason.too_large, _too_long(seconds, limits, "its header says"))
    if stream.frames > limits.max_frames:
        raise FetchError(Reason.too_large, f"video of {stream.frames} frames by its header; at most "
                         f"{limits.max_frames} (XMODAL_FETCH__MAX_VIDEO_FRAMES)")
    return seconds


def _read(container: av.container.InputContainer, stream: av.VideoStream, audio: av.AudioStream | None, *,
          audio_rate: int | None, header_s: float, limits: VideoLimits) -> DecodedVideo:
    cutter = _Cutter(limits)
    sound = _Sound(audio_rate) if audio is not None and audio_rate is not None else None
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    count = 0
    streams = (stream, audio) if audio is not None else (stream,)
    for frame in container.decode(*streams):
        if isinstance(frame, av.AudioFrame):
            assert sound is not None
            sound.add(frame, limits)
            continue
        if not isinstance(frame, av.VideoFrame):
            continue
        count += 1
        if count > limits.max_frames:
            raise FetchError(Reason.too_large, f"video holds more than {limits.max_frames} frames "
                             "(XMODAL_FETCH__MAX_VIDEO_FRAMES)")
        if frame.width * frame.height > limits.max_pixels:
            raise FetchError(Reason.too_large, f"a video frame of {frame.width}x{frame.height}; at most "
                             f"{limits.max_pixels} pixels (XMODAL_FETCH__MAX_VIDEO_PIXELS)")
        t = frame.time if frame.time is not None else (count - 1) / rate
        if t > limits.max_seconds:
            raise FetchError(Reason.too_large, _too_long(t, limits, "it holds more than"))
        cutter.add(frame, max(0.0, t))
    if count == 0:
        raise FetchError(Reason.undecodable, f"{stream.codec_context.name} video holds no decodable frame "
                         "(header only, or cut off)")
    end = cutter.last_t + 1.0 / rate
    if header_s and end < header_s * 0.9 - 0.1:
        raise FetchError(Reason.undecodable, f"truncated {stream.codec_context.name} video: its header says "
                         f"{header_s:.2f} s, its frames end at {end:.2f} s")
    duration = max(end, min(header_s, end + 1.0)) if header_s else end
    return DecodedVideo(
        segments=cutter.segments(duration), duration_s=duration, width=stream.codec_context.width,
        height=stream.codec_context.height, codec=stream.codec_context.name,
        mime=_PLAYABLE.get((_family(container.format.name), stream.codec_context.name)),
        audio=sound.samples() if sound is not None else None, audio_rate=audio_rate if sound is not None else None,
    )


class _Cutter:
    """The segment rule of the module's docstring, one frame at a time."""

    def __init__(self, limits: VideoLimits) -> None:
        self.limits = limits
        self.starts: list[float] = []
        self.keyframes: list[Image.Image] = []
        self._signature: npt.NDArray[np.float32] | None = None
        self.last_t = 0.0

    def add(self, frame: av.VideoFrame, t: float) -> None:
        self.last_t = max(self.last_t, t)
        signature = colour_signature(frame)
        if self._signature is not None:
            lim = self.limits
            elapsed = t - self.starts[-1]
            if len(self.starts) >= lim.max_segments or elapsed < lim.min_segment_s:
                return
            changed = float(np.abs(signature - self._signature).mean()) >= lim.scene_threshold
            if not changed and elapsed < lim.max_segment_s:
                return
        self.starts.append(t)
        self.keyframes.append(_keyframe(frame))
        self._signature = signature

    def segments(self, duration: float) -> tuple[Segment, ...]:
        ends = [*self.starts[1:], max(duration, self.starts[-1])]
        return tuple(Segment(s, e, k) for s, e, k in zip(self.starts, ends, self.keyframes, strict=True))


class _Sound:
    """The sound track, mixed to mono and resampled by FFmpeg's resampler as it is decoded."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self.parts: list[npt.NDArray[np.float32]] = []
        self.total = 0

    def add(self, frame: av.AudioFrame, limits: VideoLimits) -> None:
        for out in self.resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            self.total += len(samples)
            if self.total > limits.max_seconds * self.rate:
                raise FetchError(Reason.too_large, _too_long(self.total / self.rate, limits, "its sound lasts"))
            self.parts.append(samples)

    def samples(self) -> npt.NDArray[np.float32] | None:
        for out in self.resampler.resample(None):
            self.parts.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        if not self.parts:
            return None
        samples = np.concatenate(self.parts)
        np.nan_to_num(samples, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return samples if len(samples) else None


def colour_signature(frame: av.VideoFrame) -> npt.NDArray[np.float32]:
    """Each colour channel's pixel values in order (the frame read at SIGNATURE_PX x SIGNATURE_PX), in [0, 1].

    The mean absolute difference of two signatures is the earth mover's distance of their colour
    distributions: blind to where things are (motion), not tripped by values near a bin edge as histograms are.
    """
    rgb = frame.reformat(width=SIGNATURE_PX, height=SIGNATURE_PX, format="rgb24").to_ndarray()
    return np.sort(rgb.reshape(-1, 3), axis=0).astype(np.float32) / 255.0


def _keyframe(frame: av.VideoFrame) -> Image.Image:
    width, height = frame.width, frame.height
    scale = min(1.0, KEYFRAME_MAX_PX / max(width, height))
    if scale < 1.0:
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    image: Image.Image = frame.to_image(width=width, height=height)  # type: ignore[no-untyped-call]
    return image.convert("RGB")


def _family(format_name: str) -> str:
    """FFmpeg's demuxer names ("matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2") -> webm, mp4 or the name."""
    names = format_name.split(",")
    return "webm" if "webm" in names else "mp4" if "mp4" in names else format_name


def _too_long(seconds: float, limits: VideoLimits, how: str) -> str:
    return (f"video too long: {how} {seconds:.1f} s; limit {limits.max_seconds:g} s "
            "(XMODAL_FETCH__MAX_VIDEO_SECONDS); cut it into shorter clips")
