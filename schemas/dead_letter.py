"""The dead letter: what the worker writes to `assets.dlq` for an event it cannot ever apply.

Keyed by the original Kafka key. ``payload`` is the original value as text when it is UTF-8, else base64
(``payload_encoding`` says which), so nothing of the original is lost.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Reason(StrEnum):
    invalid_json = "invalid_json"
    invalid_event = "invalid_event"
    unsupported_modality = "unsupported_modality"
    fetch_forbidden = "fetch_forbidden"
    fetch_not_found = "fetch_not_found"
    fetch_failed = "fetch_failed"
    too_large = "too_large"
    undecodable = "undecodable"
    poison = "poison"  # crashed a decoder or the model even when retried alone
    tenant_required = "tenant_required"  # multi-tenant deployment, event without a tenant
    tenant_not_allowed = "tenant_not_allowed"  # single-tenant deployment, event with a tenant
    unknown_tenant = "unknown_tenant"  # the tenant does not exist and auto creation is off


class Source(BaseModel):
    topic: str
    partition: int
    offset: int


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason = Field(description="Machine-readable reason code.")
    error: str = Field(description="Human-readable detail: what was wrong and, where it helps, what to do.")
    payload: str = Field(description="The original Kafka value (text, or base64 when not UTF-8).")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    attempts: int = Field(ge=1, description="How many times the worker tried before giving up.")
    source: Source
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def build(
        cls, *, reason: Reason, error: str, value: bytes, attempts: int, topic: str, partition: int, offset: int
    ) -> DeadLetter:
        try:
            payload, enc = value.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, enc = base64.b64encode(value).decode("ascii"), "base64"
        return cls(
            reason=reason, error=error[:2000], payload=payload, payload_encoding=enc,
            attempts=attempts, source=Source(topic=topic, partition=partition, offset=offset),
        )
