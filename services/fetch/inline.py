"""Content carried in the event itself: ``data:`` URIs and base64 ``data`` fields."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote, unquote_to_bytes

from schemas.dead_letter import Reason
from services.fetch.errors import FetchError

_URLSAFE = str.maketrans("-_", "+/")


def decode_base64(data: str, *, max_bytes: int) -> bytes:
    """Decode base64 (standard or URL-safe alphabet, whitespace and missing padding tolerated).

    The size is checked from the text before anything is decoded.

    >>> decode_base64("aGVsbG8", max_bytes=100)
    b'hello'
    """
    text = "".join(data.split())
    body = text.rstrip("=")
    if len(body) * 3 // 4 > max_bytes:
        size = len(body) * 3 // 4
        raise FetchError(Reason.too_large, f"base64 content of about {size} bytes; limit {max_bytes}")
    if len(body) % 4 == 1:
        raise FetchError(Reason.invalid_event, "invalid base64: its length cannot be right")
    padded = body.translate(_URLSAFE) + "=" * (-len(body) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FetchError(Reason.invalid_event, f"invalid base64: {exc}") from exc


def decode_data_uri(uri: str, *, max_bytes: int) -> bytes:
    """Decode an RFC 2397 ``data:`` URI, base64 or percent-encoded.

    >>> decode_data_uri("data:text/plain,caf%C3%A9", max_bytes=100).decode()
    'café'
    """
    if uri[:5].lower() != "data:":
        raise FetchError(Reason.invalid_event, "not a data: URI")
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise FetchError(Reason.invalid_event, "malformed data: URI: no ',' before the content")
    try:
        if header.lower().endswith(";base64"):
            # Base64 in a URI may itself be percent-encoded (%2B, %3D, %2F).
            return decode_base64(unquote(payload, errors="strict"), max_bytes=max_bytes)
        content = unquote_to_bytes(payload)
    except UnicodeError as exc:  # non-UTF-8 escapes in base64, or lone surrogates
        raise FetchError(Reason.invalid_event, f"malformed data: URI: {exc}") from exc
    if len(content) > max_bytes:
        raise FetchError(Reason.too_large, f"data: URI content of {len(content)} bytes; limit {max_bytes}")
    return content
