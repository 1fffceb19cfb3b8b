"""Image decoding: every mode to RGB, EXIF orientation, first frames, and refusals before decoding."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from schemas.dead_letter import Reason
from services.fetch import FetchError, decode_image

WHITE, RED, GREEN, BLUE, BLACK = (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def decode(data: bytes, max_pixels: int = 1_000_000) -> Image.Image:
    img = decode_image(data, max_pixels=max_pixels)
    assert img.mode == "RGB"
    return img


def pixels(img: Image.Image) -> list[tuple[int, ...]]:
    return [tuple(int(c) for c in p) for p in np.asarray(img).reshape(-1, 3)]


def decode_error(data: bytes, max_pixels: int = 1_000_000) -> FetchError:
    with pytest.raises(FetchError) as info:
        decode_image(data, max_pixels=max_pixels)
    assert not info.value.retriable
    return info.value


def row(mode: str, values: list[Any]) -> Image.Image:
    img = Image.new(mode, (len(values), 1))
    for x, v in enumerate(values):
        img.putpixel((x, 0), v)
    return img


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "PPM", "WEBP"])
def test_rgb_is_kept_exactly(fmt: str) -> None:
    params = {"lossless": True} if fmt == "WEBP" else {}
    img = decode(encode(row("RGB", [RED, GREEN, BLUE, (12, 34, 56)]), fmt, **params))
    assert pixels(img) == [RED, GREEN, BLUE, (12, 34, 56)]


def test_grayscale() -> None:
    assert pixels(decode(encode(row("L", [0, 77, 255]), "PNG"))) == [BLACK, (77, 77, 77), WHITE]


def test_one_bit() -> None:
    img = Image.new("1", (8, 1), 0)
    img.putpixel((3, 0), 1)
    for fmt in ["PNG", "BMP"]:
        assert pixels(decode(encode(img, fmt)))[2:5] == [BLACK, WHITE, BLACK]


def test_gray_with_alpha_is_composited_on_white() -> None:
    img = decode(encode(row("LA", [(0, 0), (0, 255), (100, 255), (0, 128)]), "PNG"))
    assert pixels(img)[:3] == [WHITE, BLACK, (100, 100, 100)]
    assert all(abs(c - 127) <= 1 for c in pixels(img)[3])


def test_rgba_is_composited_on_white() -> None:
    img = decode(encode(row("RGBA", [(0, 0, 0, 0), (0, 0, 255, 255), (255, 0, 0, 128)]), "PNG"))
    transparent, opaque, half = pixels(img)
    assert transparent == WHITE
    assert opaque == BLUE
    assert half[0] == 255
    assert abs(half[1] - 127) <= 1
    assert abs(half[2] - 127) <= 1


def palette_image() -> Image.Image:
    img = Image.new("P", (3, 1))
    img.putpalette([*RED, *GREEN, *BLUE] + [0] * 759)
    for x in range(3):
        img.putpixel((x, 0), x)
    return img


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP"])
def test_palette_without_transparency(fmt: str) -> None:
    assert pixels(decode(encode(palette_image(), fmt))) == [RED, GREEN, BLUE]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency(fmt: str) -> None:
    # Index 1 (green) is transparent: it must come out white, not green and not black.
    assert pixels(decode(encode(palette_image(), fmt, transparency=1))) == [RED, WHITE, BLUE]


def test_rgb_color_key_transparency() -> None:
    data = encode(row("RGB", [RED, GREEN]), "PNG", transparency=GREEN)
    assert pixels(decode(data)) == [RED, WHITE]


def test_cmyk() -> None:
    img = row("CMYK", [(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255), (0, 255, 255, 0)])
    assert pixels(decode(encode(img, "TIFF"))) == [WHITE, (0, 255, 255), BLACK, RED]
    jpeg = decode(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95))
    assert all(abs(a - b) <= 8 for a, b in zip(pixels(jpeg)[0], RED, strict=True))


def test_16_bit_gray_png_is_scaled_not_clipped() -> None:
    samples = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    src = Image.fromarray(samples)
    assert src.mode == "I;16"
    data = encode(src, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    assert pixels(decode(data)) == [BLACK, (1, 1, 1), (128, 128, 128), WHITE]


def test_16_bit_pgm_opening_as_mode_i_is_scaled() -> None:
    data = encode(Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)), "PPM")
    assert Image.open(io.BytesIO(data)).mode == "I"
    assert pixels(decode(data)) == [BLACK, (128, 128, 128), WHITE]


def test_32_bit_integer_range_is_stretched() -> None:
    data = encode(Image.fromarray(np.array([[-100000, 0, 100000]], dtype=np.int32)), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    assert pixels(decode(data)) == [BLACK, (128, 128, 128), WHITE]


@pytest.mark.parametrize(("samples", "expected"), [
    ([0.0, 0.5, 1.0], [0, 128, 255]),
    ([-2.0, 0.0, 2.0], [0, 128, 255]),
    ([3.0, 3.0, 3.0], [0, 0, 0]),
])
def test_float_images(samples: list[float], expected: list[int]) -> None:
    data = encode(Image.fromarray(np.array([samples], dtype=np.float32)), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    assert pixels(decode(data)) == [(v, v, v) for v in expected]


def oriented(fmt: str, orientation: int, **params: Any) -> bytes:
    """A 3x2 image with distinct corners, saved with an EXIF orientation tag."""
    src = Image.new("RGB", (3, 2), WHITE)
    src.putpixel((0, 0), RED)    # top-left
    src.putpixel((2, 0), GREEN)  # top-right
    src.putpixel((0, 1), BLUE)   # bottom-left
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(src, fmt, exif=exif, **params)


@pytest.mark.parametrize(("fmt", "params"), [("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})])
def test_exif_orientation_is_applied(fmt: str, params: dict[str, Any]) -> None:
    # Orientation 6: stored rotated, shown after turning 90 degrees clockwise.
    img = decode(oriented(fmt, 6, **params))
    assert img.size == (2, 3)
    assert img.getpixel((0, 0)) == BLUE  # the stored bottom-left ends up top-left
    assert img.getpixel((1, 0)) == RED
    assert img.getexif().get(0x0112, 1) == 1  # and is not rotated a second time by a later reader


@pytest.mark.parametrize(("orientation", "size", "top_left"), [(1, (3, 2), RED), (2, (3, 2), GREEN),
                                                                  (3, (3, 2), WHITE), (8, (2, 3), GREEN)])
def test_exif_orientations(orientation: int, size: tuple[int, int], top_left: tuple[int, int, int]) -> None:
    img = decode(oriented("PNG", orientation))
    assert img.size == size
    assert img.getpixel((0, 0)) == top_left


def test_exif_orientation_in_jpeg() -> None:
    src = Image.new("RGB", (64, 32), RED)
    exif = Image.Exif()
    exif[0x0112] = 6
    assert decode(encode(src, "JPEG", exif=exif)).size == (32, 64)


def frames(colors: list[tuple[int, int, int]]) -> list[Image.Image]:
    return [Image.new("RGB", (4, 4), c) for c in colors]


@pytest.mark.parametrize(("fmt", "params"), [("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_animated_images_give_the_first_frame(fmt: str, params: dict[str, Any]) -> None:
    first, *rest = frames([RED, BLUE, GREEN])
    data = encode(first, fmt, save_all=True, append_images=rest, duration=100, loop=0, **params)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    assert set(pixels(decode(data))) == {RED}


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; its pixel data is for 1x1, so decoding it would fail."""
    data = encode(Image.new("RGB", (1, 1)), "PNG")
    ihdr_at = data.index(b"IHDR")
    fields = struct.pack(">II", width, height) + data[ihdr_at + 12:ihdr_at + 17]
    chunk = b"IHDR" + fields
    return data[:ihdr_at] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[ihdr_at + 21:]


@pytest.mark.parametrize(("width", "height"), [(2000, 1000), (10_000, 10_000), (100_000, 100_000)])
def test_pixel_limit_is_checked_from_the_header(width: int, height: int) -> None:
    # Beyond the limit, from 2 million pixels to ten billion (past PIL's own bomb limits): refused as too
    # large, never decoded -- decoding these fake headers would fail as undecodable.
    limit_before = Image.MAX_IMAGE_PIXELS
    err = decode_error(png_with_size(width, height), max_pixels=1_000_000)
    assert err.reason is Reason.too_large
    assert limit_before == Image.MAX_IMAGE_PIXELS


def test_pil_bomb_warning_does_not_let_a_bomb_through() -> None:
    # Where warnings are not errors (production), PIL only warns past MAX_IMAGE_PIXELS; our check refuses.
    with pytest.warns(Image.DecompressionBombWarning):
        err = decode_error(png_with_size(10_000, 10_000), max_pixels=1_000_000)
    assert err.reason is Reason.too_large


def test_pixel_limit_is_inclusive() -> None:
    data = encode(Image.new("RGB", (100, 10)), "PNG")
    assert decode(data, max_pixels=1000).size == (100, 10)
    assert decode_error(data, max_pixels=999).reason is Reason.too_large


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "TIFF"])
def test_truncated_images_are_undecodable(fmt: str) -> None:
    noise = np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    err = decode_error(data[: len(data) * 2 // 3])
    assert err.reason is Reason.undecodable
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("data", [
    b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",  # EPS would run Ghostscript
])
def test_garbage_and_refused_formats_are_undecodable(data: bytes) -> None:
    assert decode_error(data).reason is Reason.undecodable


def test_corrupt_pixel_data_is_undecodable() -> None:
    data = bytearray(encode(Image.new("RGB", (64, 64), RED), "PNG"))
    at = data.index(b"IDAT") + 8
    data[at:at + 16] = b"\xff" * 16
    assert decode_error(bytes(data)).reason is Reason.undecodable


def test_result_is_independent_of_the_input() -> None:
    img = decode(encode(Image.new("RGB", (4, 4), GREEN), "PNG"))
    img.putpixel((0, 0), RED)  # writable and fully loaded: not tied to a closed file
    assert img.getpixel((1, 1)) == GREEN
