"""Errors of the gateway, and the one place that maps any error to an HTTP status and an error code.

Every error answer is JSON ``{"error": {"code", "message", "details"?}}``; :func:`classify` decides the
status and the code for errors raised anywhere below the handlers (store, fetch, embedding, Kafka), so
handlers raise what they know and never build error responses themselves.

>>> c = classify(BadRequest("limit: must be <= 100"))
>>> c.status, c.code
(400, 'invalid_request')
>>> c = classify(Overloaded("query queue full", retry_after=2.0))
>>> c.status, c.code, c.retry_after
(429, 'overloaded', 2.0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from services.errors import ConfigError, Overloaded, TransientError, XmodalError
from services.fetch.errors import FetchError
from services.store.errors import InvalidFilter, InvalidQuery

_OBJECT_REPR = re.compile(r"\s*<[^<>]* object at 0x[0-9a-fA-F]+>")

__all__ = [
    "ApiError",
    "BadRequest",
    "Classified",
    "DependencyDown",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "Shed",
    "Unauthorized",
    "UnsupportedMediaType",
    "classify",
]


class ApiError(XmodalError):
    """An error whose HTTP status and code the raiser knows."""

    status: int = 400
    code: str = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.details = details or []


class BadRequest(ApiError):
    """The request is malformed or asks for something impossible (400)."""


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(ApiError):
    status = 413
    code = "too_large"


class DependencyDown(ApiError, TransientError):
    """Kafka or Weaviate cannot answer now (503); retrying later may work."""

    status = 503
    code = "unavailable"


class Shed(Overloaded):
    """Admission control refused a request (429 with Retry-After); ``reason`` says which bound, ``details``
    the figures behind it (services.gateway.admission)."""

    def __init__(self, message: str, *, reason: str, retry_after: float,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.reason = reason
        self.details = details or []


@dataclass(frozen=True)
class Classified:
    status: int
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    retry_after: float | None = None


def classify(exc: BaseException) -> Classified:
    """Status, code and client-safe message of an error; 500 only for what nobody anticipated."""
    if isinstance(exc, ApiError):
        return Classified(exc.status, exc.code, str(exc), exc.details)
    if isinstance(exc, Overloaded):
        details = exc.details if isinstance(exc, Shed) else []
        return Classified(429, "overloaded", str(exc), details, retry_after=max(1.0, exc.retry_after))
    if isinstance(exc, FetchError):
        return _fetch_error(exc)
    if isinstance(exc, InvalidFilter | InvalidQuery):
        return Classified(400, "invalid_query", str(exc))
    if isinstance(exc, TimeoutError):
        return Classified(504, "timeout", "the request took longer than its deadline")
    if isinstance(exc, XmodalError) and exc.retriable:
        return Classified(503, "unavailable", str(exc), retry_after=1.0)
    if isinstance(exc, ConfigError):
        return Classified(503, "misconfigured", str(exc))
    return Classified(500, "internal", "internal error; the gateway log has the details")


def _fetch_error(exc: FetchError) -> Classified:
    """The fetch reason code (fetch_forbidden, undecodable, ...) tells the client what to fix."""
    reason = exc.reason.value
    # Decoder messages may quote Python object reprs ("<_io.BytesIO object at 0x...>"): not for clients.
    message = _OBJECT_REPR.sub("", str(exc))
    if reason == "too_large":
        return Classified(413, reason, message)
    if reason == "invalid_event":  # malformed base64 or URI: the request itself is wrong
        return Classified(400, "invalid_image", message)
    return Classified(422, reason, message)
