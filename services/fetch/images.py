"""Image bytes -> an RGB PIL image, bounded before decoding and strict about corrupt data.

CPU-bound: callers on an event loop run :func:`decode_image` in a thread (``asyncio.to_thread``).

>>> import io
>>> from PIL import Image
>>> buf = io.BytesIO()
>>> Image.new("LA", (4, 2), (0, 0)).save(buf, "PNG")
>>> img = decode_image(buf.getvalue(), max_pixels=100)
>>> img.mode, img.size, img.getpixel((0, 0))
('RGB', (4, 2), (255, 255, 255))
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from schemas.dead_letter import Reason
from services.fetch.errors import FetchError

# Formats a content image may have. Everything else (EPS runs Ghostscript, and dozens of rarely used
# decoders) is refused: fewer decoders, less attack surface.
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP", "TIFF", "PPM", "ICO", "QOI")
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WHITE = (255, 255, 255, 255)
# Sources that may be served in place of the decoded picture (DecodedImage.web_ready): a format every browser
# reads, one frame, nothing a browser applies and PIL does not (colour profile, gamma, transparency, EXIF
# rotation), and no metadata a re-encoded thumbnail would drop (EXIF with its GPS position, XMP, comments).
_WEB_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
_WEB_MODES = frozenset({"RGB", "L"})
_NOT_WEB_INFO = frozenset({"transparency", "icc_profile", "gamma", "exif", "xmp", "XML:com.adobe.xmp", "comment"})
# What PIL raises on corrupt input: OSError (truncated, broken stream), SyntaxError (bad headers in some
# plugins), plus the odd ValueError/struct.error/EOFError/IndexError from malformed structures.
_CORRUPT = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError)


@cache
def _formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)


@dataclass(frozen=True)
class DecodedImage:
    """A decoded picture, and whether its source bytes can be served to a browser in its place.

    ``web_ready``: the source is a one-frame PNG, JPEG or WebP in RGB or grey, with no alpha, no transparent
    colour, no ICC profile, no PNG gamma, and no EXIF, XMP, comment or PNG text: a browser shows the source
    bytes as ``image`` looks, and they tell no more than the picture.
    """

    image: Image.Image
    web_ready: bool


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Decode ``data`` into a new RGB image (first frame, EXIF orientation applied, alpha on white).

    Raises :class:`FetchError`: ``too_large`` when the header announces more than ``max_pixels`` pixels
    (checked before any pixel is decoded), ``undecodable`` for unknown, corrupt or truncated images.
    """
    return decode(data, max_pixels=max_pixels).image


def decode(data: bytes, *, max_pixels: int) -> DecodedImage:
    """:func:`decode_image`, also saying what the source was (one decode pass, same errors)."""
    try:
        src = _open(data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # PIL's own limit (2 x Image.MAX_IMAGE_PIXELS; the warning counts when warnings are errors).
        raise FetchError(Reason.too_large, f"image too large: {exc}") from exc
    except _CORRUPT as exc:
        raise FetchError(Reason.undecodable, f"not a readable image: {exc}") from exc
    try:
        _check_size(src, max_pixels)
        return _decode(src)
    except _CORRUPT as exc:
        raise FetchError(Reason.undecodable, f"corrupt {src.format} image: {exc}") from exc
    finally:
        src.close()


def _open(data: bytes) -> Image.Image:
    # Only parses the header; pixels are decoded by load().
    return Image.open(io.BytesIO(data), formats=_formats())


def _check_size(img: Image.Image, max_pixels: int) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise FetchError(Reason.undecodable, f"{img.format} image of size {width}x{height}")
    if width * height > max_pixels:
        raise FetchError(
            Reason.too_large,
            f"{img.format} image of {width}x{height} = {width * height} pixels; limit {max_pixels} "
            "(XMODAL_FETCH__MAX_PIXELS)",
        )


def _web_ready(src: Image.Image) -> bool:
    return (src.format in _WEB_FORMATS and src.mode in _WEB_MODES and not getattr(src, "is_animated", False)
            and not _NOT_WEB_INFO.intersection(src.info) and not getattr(src, "text", None))


def _decode(src: Image.Image) -> DecodedImage:
    # A full load here, with ImageFile.LOAD_TRUNCATED_IMAGES left False, makes truncated data an error
    # instead of a half-grey picture. Animated images stay on their first frame.
    src.load()
    web_ready = _web_ready(src)  # before exif_transpose, which changes the info
    ImageOps.exif_transpose(src, in_place=True)  # before converting: conversion drops TIFF orientation tags
    return DecodedImage(to_rgb(src), web_ready)


def to_rgb(img: Image.Image) -> Image.Image:
    """A new RGB image: alpha composited on white, 16/32-bit and float samples scaled (not clipped)."""
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit_gray(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    return img.convert("RGB")


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    samples = np.asarray(img, dtype=np.float32)
    if img.mode == "F":
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = _sample_range(img.mode, samples)
    scaled = (samples - low) * (255.0 / (high - low)) if high > low else np.zeros_like(samples)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _sample_range(mode: str, samples: npt.NDArray[np.float32]) -> tuple[float, float]:
    """The sample values that map to black and white."""
    if mode.startswith("I;16"):
        return 0.0, 65535.0
    low, high = (float(samples.min()), float(samples.max())) if samples.size else (0.0, 0.0)
    if mode == "I" and low >= 0 and high <= 65535:
        return 0.0, 65535.0  # 16-bit data (16-bit PGM/PNG open as "I" in some PIL versions)
    if mode == "F" and low >= 0 and high <= 1:
        return 0.0, 1.0
    return low, high  # anything else: stretch its own range


def preload_codecs() -> None:
    """Import Pillow's format plugins now (about 1-2 s, once per process) instead of on the first image."""
    _formats()
    Image.new("RGB", (2, 2)).save(io.BytesIO(), format="WEBP")
