"""Content of an upsert: fetch or decode it, hash it, and turn it into a model input (plus its preview)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from PIL import Image

from schemas.asset_event import AssetEvent, Modality
from schemas.dead_letter import Reason
from services.fetch.audio import audio_preview, decode_audio
from services.fetch.errors import FetchError
from services.fetch.fetcher import Fetcher
from services.fetch.images import decode_image
from services.ingest.parse import Rejected

THUMBNAIL_PX = 160
PREVIEW_SECONDS = 5.0  # of an audio clip, played by the search page (encoding costs ~3 ms per second)


@dataclass
class Content:
    """A prepared upsert: its hash, and the model input it needs unless its vectors can be reused.

    ``thumbnail`` is the preview stored with the object: a small WebP for an image, a short OGG clip for audio.
    ``caption`` (an image's or clip's) is hashed apart from the content, so either can change alone.
    """

    content_hash: str
    text: str | None = None
    image: Image.Image | None = None
    audio: npt.NDArray[np.float32] | None = None  # mono, at Decoding.audio_rate
    thumbnail: bytes | None = None
    caption: str | None = None
    caption_hash: str = ""  # "" without a caption

    @property
    def modality(self) -> Modality:
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


async def load_bytes(event: AssetEvent, fetcher: Fetcher) -> bytes:
    if event.text is not None:
        return event.text.encode("utf-8")
    if event.data is not None:
        try:
            return base64.b64decode(event.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Rejected(Reason.invalid_event, f"`data` is not valid base64: {exc}") from exc
    assert event.uri is not None  # the schema guarantees exactly one source for an upsert
    try:
        return await fetcher.fetch(event.uri)
    except FetchError as exc:
        raise Rejected(Reason(exc.reason), str(exc)) from exc


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
    try:
        image = decode_image(raw, max_pixels=decoding.max_pixels)
    except FetchError as exc:
        raise Rejected(Reason(exc.reason), str(exc)) from exc
    return Content(digest, image=image, thumbnail=thumbnail(image))


def _prepare_audio(digest: str, raw: bytes, decoding: Decoding) -> Content:
    if decoding.audio_rate is None:
        raise Rejected(Reason.unsupported_modality, "no embedding space of this worker takes audio")
    try:
        clip = decode_audio(raw, sampling_rate=decoding.audio_rate, max_seconds=decoding.max_audio_s,
                            max_bytes=decoding.max_audio_bytes)
    except FetchError as exc:
        raise Rejected(Reason(exc.reason), str(exc)) from exc
    return Content(digest, audio=clip.samples, thumbnail=audio_preview(clip, seconds=PREVIEW_SECONDS))


def thumbnail(image: Image.Image) -> bytes:
    thumb = image
    if max(image.size) > THUMBNAIL_PX:  # small images are their own thumbnail: no copy, no resize
        thumb = image.copy()
        thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buf = io.BytesIO()
    thumb.save(buf, format="WEBP", quality=75, method=0)  # method 0: half the encode time, ~same size
    return buf.getvalue()
