"""Content preparation (services/ingest/content.py): thumbnails, the source bytes where a browser shows them
as decoded, a small JPEG otherwise."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from services.fetch.images import decode
from services.ingest.content import THUMBNAIL_MAX_SOURCE_BYTES, THUMBNAIL_PX, thumbnail


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def thumb_of(raw: bytes) -> bytes:
    return thumbnail(decode(raw, max_pixels=10_000_000), raw)


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize(("fmt", "mode", "params"), [
    ("PNG", "RGB", {}), ("PNG", "L", {}), ("JPEG", "RGB", {"quality": 90}), ("WEBP", "RGB", {"lossless": True}),
])
def test_a_small_web_ready_source_is_its_own_thumbnail(fmt: str, mode: str, params: dict[str, Any]) -> None:
    raw = encode(Image.new(mode, (64, 48), 120), fmt, **params)
    assert thumb_of(raw) is raw


def rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to show
    return encode(Image.new("RGB", (64, 32), (200, 10, 10)), "JPEG", exif=exif)


def jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "a camera maker"  # any EXIF, e.g. a GPS position, stays out of what the gateway serves
    return encode(Image.new("RGB", (64, 32)), "JPEG", exif=exif)


def png_with_text() -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "someone")
    return encode(Image.new("RGB", (64, 64)), "PNG", pnginfo=info)


def noisy_png(side: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "PNG")


@pytest.mark.parametrize(("raw", "size"), [
    (encode(Image.new("RGBA", (64, 64), (0, 0, 255, 0)), "PNG"), (64, 64)),  # alpha: composited on white
    (encode(Image.new("P", (64, 64), 3), "PNG", transparency=3), (64, 64)),
    (rotated_jpeg(), (32, 64)),  # shown rotated
    (jpeg_with_exif(), (64, 32)),
    (png_with_text(), (64, 64)),
    (encode(Image.new("CMYK", (64, 64), (0, 50, 50, 0)), "JPEG"), (64, 64)),
    (encode(Image.new("RGB", (64, 64), (9, 9, 9)), "BMP"), (64, 64)),  # not a format every browser shows
    (encode(Image.new("RGB", (64, 64)), "GIF"), (64, 64)),
    (encode(Image.new("RGB", (64, 64)), "PNG", icc_profile=b"not checked by PIL"), (64, 64)),
    (encode(Image.new("RGB", (640, 480), (0, 128, 0)), "PNG"), (160, 120)),  # too big: scaled down
    (encode(Image.new("RGB", (100, 1000), (0, 128, 0)), "JPEG"), (16, 160)),
    (noisy_png(80), (80, 80)),  # small, but more bytes than a thumbnail may take
])
def test_any_other_source_is_encoded_as_a_small_jpeg(raw: bytes, size: tuple[int, int]) -> None:
    got = thumb_of(raw)
    img = opened(got)
    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", size)
    assert max(img.size) <= THUMBNAIL_PX


def test_the_source_size_bound() -> None:
    assert len(noisy_png(80)) > THUMBNAIL_MAX_SOURCE_BYTES > len(noisy_png(64))
    raw = noisy_png(64)
    assert thumb_of(raw) is raw


def test_an_encoded_thumbnail_shows_what_the_model_sees() -> None:
    raw = encode(Image.new("RGBA", (64, 64), (0, 0, 255, 0)), "PNG")  # fully transparent: white
    pixels = np.asarray(opened(thumb_of(raw)), dtype=np.int16)
    assert np.abs(pixels - 255).max() <= 2


def test_an_animated_source_is_encoded_from_its_first_frame() -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 0, 255))]
    raw = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    img = opened(thumb_of(raw))
    assert img.format == "JPEG"
    r, _, b = (int(v) for v in np.asarray(img)[32, 32])
    assert r > 200 and b < 50
