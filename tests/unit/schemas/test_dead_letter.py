from __future__ import annotations

import base64

from schemas.dead_letter import DeadLetter, Reason


def test_utf8_payload_is_kept_as_text() -> None:
    dl = DeadLetter.build(reason=Reason.invalid_json, error="bad", value=b'{"a":', attempts=1,
                          topic="assets", partition=2, offset=41)
    out = DeadLetter.model_validate_json(dl.model_dump_json())
    assert (out.payload, out.payload_encoding, out.source.partition, out.source.offset) == ('{"a":', "utf-8", 2, 41)
    assert out.failed_at.tzinfo is not None


def test_binary_payload_is_kept_as_base64() -> None:
    raw = b"\xff\xfe\x00binary"
    dl = DeadLetter.build(reason=Reason.invalid_json, error="bad", value=raw, attempts=1,
                          topic="assets", partition=0, offset=0)
    assert dl.payload_encoding == "base64"
    assert base64.b64decode(dl.payload) == raw
