"""Content of an upsert: fetch or decode it, hash it, and turn it into a model input (plus its preview)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from PIL import Image

from schemas.asset_event import AssetEvent, Modality
from schemas.dead_letter import Reason
from services.fetch.audio import audio_preview, decode_audio
from services.fetch.errors import FetchError
from services.fetch.fetcher import Fetcher
from services.fetch.images import DecodedImage, decode
from services.fetch.video import DecodedVideo, VideoLimits, decode_video
from services.ingest.parse import Rejected

THUMBNAIL_PX = 160
# A source at most this big (and small enough, and shown by browsers as decoded) is stored as its own
# thumbnail: no encoding at all. Bounds what is stored per object near what an encoded thumbnail takes.
THUMBNAIL_MAX_SOURCE_BYTES = 16 * 1024
THUMBNAIL_JPEG_QUALITY = 85
PREVIEW_SECONDS = 5.0  # of an audio clip, played by the search page (encoding costs ~3 ms per second)


@dataclass
class Content:
    """A prepared upsert: its hash, and the model input it needs unless its vectors can be reused.

    ``thumbnail`` is the preview stored with the object: for an image a small PNG, JPEG or WebP (see
    :func:`thumbnail`), for audio a short OGG clip.
    ``caption`` (an image's or clip's) is hashed apart from the content, so either can change alone.
    """

    content_hash: str
    text: str | None = None
    image: Image.Image | None = None
    audio: npt.NDArray[np.float32] | None = None  # mono, at Decoding.audio_rate
    thumbnail: bytes | None = None
    caption: str | None = None
    caption_hash: str = ""  # "" without a caption
    video: DecodedVideo | None = None  # a video's segments (keyframes, times) and sound
    playback: bytes | None = None  # a video's own bytes, stored when a browser plays them (see Decoding)
    playback_mime: str | None = None

    @property
    def modality(self) -> Modality:
        if self.video is not None:
            return Modality.video
        if self.image is not None:
            return Modality.image
        return Modality.audio if self.audio is not None else Modality.text


@dataclass(frozen=True)
class Decoding:
    """Limits and targets for decoding content."""

    max_pixels: int
    audio_rate: int | None = None  # the audio space's sampling rate; None: no space takes audio
    max_audio_s: float = 600.0
    max_audio_bytes: int = 64 * 1024 * 1024
    video: VideoLimits = field(default_factory=VideoLimits)
    max_playback_bytes: int = 4 * 1024 * 1024  # a playable video at most this big is stored for the page


async def load_bytes(event: AssetEvent, fetcher: Fetcher) -> bytes:
    if event.uri is None:
        return inline_bytes(event)
    try:
        return await fetcher.fetch(event.uri)
    except FetchError as exc:
        raise Rejected(Reason(exc.reason), str(exc)) from exc


def inline_bytes(event: AssetEvent) -> bytes:
    """The content an upsert carries in itself (its text, or its base64 ``data``); CPU only, no I/O."""
    if event.text is not None:
        return event.text.encode("utf-8")
    assert event.data is not None  # the schema guarantees exactly one source for an upsert
    try:
        return base64.b64decode(event.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected(Reason.invalid_event, f"`data` is not valid base64: {exc}") from exc


def content_hash(modality: Modality, raw: bytes) -> str:
    return hashlib.sha256(modality.value.encode() + b"\0" + raw).hexdigest()


def caption_hash(caption: str | None) -> str:
    """The hash a caption is compared by; "" for no caption (so no caption equals no caption)."""
    if caption is None:
        return ""
    return hashlib.sha256(b"caption\0" + caption.encode("utf-8")).hexdigest()


def prepare(event: AssetEvent, raw: bytes, decoding: Decoding) -> Content:
    """Decode ``raw`` into the model input (and a preview for images and audio), with the event's caption."""
    content = _decode(event, raw, decoding)
    if event.caption is None:
        return content
    return replace(content, caption=event.caption, caption_hash=caption_hash(event.caption))


def _decode(event: AssetEvent, raw: bytes, decoding: Decoding) -> Content:
    assert event.modality is not None
    digest = content_hash(event.modality, raw)
    if event.modality is Modality.text:
        try:
            return Content(digest, text=raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise Rejected(Reason.undecodable, f"text content is not UTF-8: {exc}") from exc
    if event.modality is Modality.audio:
        return _prepare_audio(digest, raw, decoding)
    if event.modality is Modality.video:
        return _prepare_video(digest, raw, decoding)
    try:
        decoded = decode(raw, max_pixels=decoding.max_pixels)
    except FetchError as exc:
        raise Rejected(Reason(exc.reason), str(exc)) from exc
    return Content(digest, image=decoded.image, thumbnail=thumbnail(decoded, raw))


#: An upsert and its content: the fetched bytes, the Rejected its fetch ended with, or None when inline.
Source = tuple[AssetEvent, bytes | Rejected | None]


def prepare_all(sources: Sequence[Source], decoding: Decoding) -> list[Content | Rejected]:
    """:func:`prepare` for many upserts in one call (one thread hand-off for a batch, not one per event).

    Each source is the fetched bytes, the Rejected its fetch ended with, or None for inline content (decoded
    here). A Rejected comes back in the event's place; any other exception raises.
    """
    out: list[Content | Rejected] = []
    for event, raw in sources:
        if isinstance(raw, Rejected):
            out.append(raw)
            continue
        try:
            out.append(prepare(event, inline_bytes(event) if raw is None else raw, decoding))
        except Rejected as rej:
            out.append(rej)
    return out


def split_sources(sources: Sequence[Source], *, max_parts: int, min_part_bytes: int) -> list[list[Source]]:
    """``sources`` cut, in order, into at most ``max_parts`` runs of about equal decoding work, so that a batch
    of clips or large images is decoded on several threads (soundfile, soxr and PIL release the GIL) while a
    batch of small images stays one thread hand-off. The work of a source is its encoded size (texts and
    rejections cost nothing); no run is cut below ``min_part_bytes``.

    >>> from schemas.asset_event import AssetEvent
    >>> ev = AssetEvent.model_validate({"schema_version": 1, "asset_id": "a", "op": "upsert", "modality": "audio",
    ...                                 "uri": "https://example.com/a.wav", "event_time": "2026-12-02T08:00:00Z"})
    >>> [len(p) for p in split_sources([(ev, b"x" * 100)] * 8, max_parts=4, min_part_bytes=200)]
    [2, 2, 2, 2]
    >>> [len(p) for p in split_sources([(ev, b"x" * 100)] * 8, max_parts=4, min_part_bytes=1000)]
    [8]
    """
    def cost(source: Source) -> int:
        event, raw = source
        if isinstance(raw, Rejected) or event.modality is Modality.text:
            return 0
        return len(raw) if raw is not None else len(event.data or "") * 3 // 4

    costs = [cost(s) for s in sources]
    parts = max(1, min(max_parts, sum(costs) // max(1, min_part_bytes), len(sources)))
    if parts == 1:
        return [list(sources)]
    target, acc = sum(costs) / parts, 0
    out: list[list[Source]] = []
    run: list[Source] = []
    for source, c in zip(sources, costs, strict=True):
        run.append(source)
        acc += c
        if acc >= target * (len(out) + 1) and len(out) < parts - 1:
            out.append(run)
            run = []
    if run:
        out.append(run)
    return out


def _prepare_audio(digest: str, raw: bytes, decoding: Decoding) -> Content:
    if decoding.audio_rate is None:
        raise Rejected(Reason.unsupported_modality, "no embedding space of this worker takes audio")
    try:
        clip = decode_audio(raw, sampling_rate=decoding.audio_rate, max_seconds=decoding.max_audio_s,
                            max_bytes=decoding.max_audio_bytes)
    except FetchError as exc:
        raise Rejected(Reason(exc.reason), str(exc)) from exc
    return Content(digest, audio=clip.samples, thumbnail=audio_preview(clip, seconds=PREVIEW_SECONDS))


def _prepare_video(digest: str, raw: bytes, decoding: Decoding) -> Content:
    """Segments and sound (at the audio space's rate, when there is one); the first keyframe is the poster."""
    try:
        video = decode_video(raw, limits=decoding.video, audio_rate=decoding.audio_rate)
    except FetchError as exc:
        raise Rejected(Reason(exc.reason), str(exc)) from exc
    poster = video.segments[0].keyframe
    playable = video.mime is not None and len(raw) <= decoding.max_playback_bytes
    return Content(digest, video=video, thumbnail=thumbnail(DecodedImage(poster, web_ready=False), b""),
                   playback=raw if playable else None, playback_mime=video.mime if playable else None)


def thumbnail(decoded: DecodedImage, raw: bytes) -> bytes:
    """The image's preview, at most THUMBNAIL_PX on its longer side.

    A small source that browsers show as decoded (a 64x64 PNG, a 150 px JPEG) is its own thumbnail: the
    bytes as they came, with no encoding. Any other is scaled down (box-reduced, then bicubic) and encoded as
    JPEG: on 160 px thumbnails 3-5x faster than WebP at method 0, for 2-3x the bytes (3-4.5 KB).
    """
    image = decoded.image
    if decoded.web_ready and max(image.size) <= THUMBNAIL_PX and len(raw) <= THUMBNAIL_MAX_SOURCE_BYTES:
        return raw
    if max(image.size) > THUMBNAIL_PX:  # resize makes a new image: no copy of the model input
        image = image.resize(fit(image.size, THUMBNAIL_PX), Image.Resampling.BICUBIC, reducing_gap=1.0)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=THUMBNAIL_JPEG_QUALITY)
    return buf.getvalue()


def fit(size: tuple[int, int], box: int) -> tuple[int, int]:
    """``size`` scaled to fit a ``box`` x ``box`` square, aspect ratio kept.

    >>> fit((640, 480), 160), fit((100, 1000), 160), fit((1000, 1), 160)
    ((160, 120), (16, 160), (160, 1))
    """
    width, height = size
    scale = box / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))
