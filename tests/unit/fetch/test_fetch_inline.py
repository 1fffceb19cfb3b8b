"""data: URIs and inline base64 content."""

from __future__ import annotations

import base64

import pytest

from schemas.dead_letter import Reason
from services.config import FetchSettings
from services.fetch import Fetcher, FetchError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n\x00\xff\xfe"


def fetcher(max_bytes: int = 64) -> Fetcher:
    return Fetcher(FetchSettings(max_bytes=max_bytes))


@pytest.mark.parametrize(("uri", "expected"), [
    ("data:image/png;base64," + base64.b64encode(PNG_MAGIC).decode(), PNG_MAGIC),
    ("DATA:image/png;BASE64," + base64.b64encode(PNG_MAGIC).decode(), PNG_MAGIC),
    ("data:;base64,%2B%2F8%3D", b"\xfb\xff"),  # "+/8=" percent-encoded
    ("data:;base64,aGVs%0AbG8=", b"hello"),
    ("data:,hello%20world", b"hello world"),
    ("data:text/plain;charset=utf-8,caf%C3%A9", "café".encode()),
    ("data:text/plain,caf\u00e9", "café".encode()),
    ("data:,", b""),
    ("data:,a,b", b"a,b"),
])
async def test_data_uris(uri: str, expected: bytes) -> None:
    assert await fetcher().fetch(uri) == expected


@pytest.mark.parametrize(("uri", "reason"), [
    ("data:image/png;base64", Reason.invalid_event),  # no comma
    ("data:image/png", Reason.invalid_event),
    ("data:;base64,@@@@", Reason.invalid_event),
    ("data:;base64,aGVsbG8=aGVsbG8=", Reason.invalid_event),
    ("data:;base64,A", Reason.invalid_event),
    ("data:;base64,%FF%FE", Reason.invalid_event),
    ("data:;base64," + "A" * 200, Reason.too_large),
    ("data:," + "x" * 65, Reason.too_large),
    ("data:," + "%41" * 65, Reason.too_large),
])
async def test_bad_data_uris(uri: str, reason: Reason) -> None:
    with pytest.raises(FetchError) as info:
        await fetcher().fetch(uri)
    assert info.value.reason is reason
    assert not info.value.retriable


async def test_large_data_uri_is_decoded_off_the_loop() -> None:
    content = bytes(range(256)) * 2048  # 512 KiB: past the size decoded in a thread
    uri = "data:application/octet-stream;base64," + base64.b64encode(content).decode()
    assert await fetcher(max_bytes=len(content)).fetch(uri) == content


@pytest.mark.parametrize(("text", "expected"), [
    (base64.b64encode(b"\x00\x01hello\xff").decode(), b"\x00\x01hello\xff"),
    (base64.urlsafe_b64encode(b"\xfb\xff\xfe").decode(), b"\xfb\xff\xfe"),
    ("aGVsbG8", b"hello"),  # no padding
    ("aGVs\nbG8=\n", b"hello"),
    ("  aGVs bG8=  ", b"hello"),
    ("", b""),
])
def test_decode_base64(text: str, expected: bytes) -> None:
    assert fetcher().decode_base64(text) == expected


@pytest.mark.parametrize("text", ["not base64!", "aGVsbG8==x", "A", "aGVs\x00bG8=", "aGVsbG8é"])
def test_decode_base64_rejects_malformed_text(text: str) -> None:
    with pytest.raises(FetchError) as info:
        fetcher().decode_base64(text)
    assert info.value.reason is Reason.invalid_event


def test_decode_base64_checks_size_before_decoding() -> None:
    # 88 characters decode to 66 bytes; the size is refused from the length alone, invalid or not.
    with pytest.raises(FetchError) as info:
        fetcher(max_bytes=64).decode_base64("!" * 88)
    assert info.value.reason is Reason.too_large
    assert len(fetcher(max_bytes=64).decode_base64(base64.b64encode(b"x" * 64).decode())) == 64
