"""Weaviate client exceptions -> store errors: retriable (StoreUnavailable) or not.

The client reports most gRPC failures as text (``WeaviateQueryError`` keeps only the status details), so
part of the classification reads the message. The markers below are what the client (4.24) and the
server (1.39) write for "down / slow / overloaded"; anything else is permanent.

>>> is_transient_message("failed to connect to all addresses; last error: UNAVAILABLE")
True
>>> is_transient_message("vector lengths don't match: 3 vs 2")
False
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum

import httpx
from grpc import StatusCode  # type: ignore[import-untyped]
from grpc.aio import AioRpcError, UsageError  # type: ignore[import-untyped]
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateClosedClientError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateQueryError,
    WeaviateRetryError,
    WeaviateStartUpError,
    WeaviateTimeoutError,
)

from services.store.errors import InvalidQuery, StoreError, StoreUnavailable, TenantNotFound

_TRANSIENT_MARKERS = (
    "unavailable", "deadline", "resource_exhausted", "resource exhausted", "connection refused",
    "failed to connect", "socket closed", "connection reset", "broken pipe", "timed out", "timeout",
    "too many requests", "read-only", "readonly", "context canceled", "not enough replicas",
    "goaway", "stream removed", "shutting down",
    # a node that is back from an outage and has the class in its schema but not yet its local index
    "non-existing index",
)
_TRANSIENT_TYPES = (
    WeaviateConnectionError, WeaviateTimeoutError, WeaviateGRPCUnavailableError, WeaviateRetryError,
    WeaviateStartUpError, httpx.TransportError,
)
_TRANSIENT_CODES = {
    StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED, StatusCode.RESOURCE_EXHAUSTED, StatusCode.ABORTED,
}
_GRPC_CAUSES = {StatusCode.DEADLINE_EXCEEDED: "store_timeout", StatusCode.RESOURCE_EXHAUSTED: "store_overloaded"}


class Call(Enum):
    """What kind of call failed: decides whether a permanent failure is the caller's fault (a query)."""

    QUERY = "query"
    WRITE = "write"
    ADMIN = "admin"


def is_tenant_not_found(message: str) -> bool:
    """Weaviate's answer to a call naming a tenant the collection does not have (1.39: ``tenant not found``).

    >>> is_tenant_not_found('object search at index asset: tenant not found: "acme".')
    True
    """
    return "tenant not found" in message.lower()


def is_transient_message(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _TRANSIENT_MARKERS)


def translate(error: BaseException, what: str, call: Call) -> StoreError:
    """The store error for a failed client call ``what``."""
    text = f"{what}: {error}"
    if is_tenant_not_found(str(error)):
        return TenantNotFound(text)
    if isinstance(error, TimeoutError | WeaviateTimeoutError):
        return StoreUnavailable(f"{what}: Weaviate did not answer in time", cause="store_timeout")
    if isinstance(error, _TRANSIENT_TYPES):
        return StoreUnavailable(text)
    if isinstance(error, UsageError):  # a call on a gRPC channel closed under it (failover to another node)
        return StoreUnavailable(text)
    if isinstance(error, AioRpcError):
        if error.code() not in _TRANSIENT_CODES:
            return _permanent(text, call)
        return StoreUnavailable(text, cause=_GRPC_CAUSES.get(error.code(), "store_unreachable"))
    if isinstance(error, WeaviateClosedClientError):
        return StoreError(f"{what}: the store is not started or already closed")
    if isinstance(error, UnexpectedStatusCodeError):
        status = error.status_code
        if status == 429:
            return StoreUnavailable(text, cause="store_overloaded")
        if status >= 500:
            return StoreUnavailable(text, cause="store_error")
        return _permanent(text, call) if status != 403 else StoreError(text)
    if isinstance(error, WeaviateQueryError):
        return StoreUnavailable(text, cause=cause_of_message(error.message)) if is_transient_message(error.message) \
            else _permanent(text, call)
    return StoreError(text)


def rest_error(what: str, status: int, body: str) -> StoreError:
    """The store error for a REST answer other than 200 / 404.

    >>> type(rest_error("read", 503, "")).__name__, type(rest_error("read", 422, 'tenant not found: "a"')).__name__
    ('StoreUnavailable', 'TenantNotFound')
    """
    text = f"{what}: Weaviate answered {status}: {body[:300]}"
    if is_tenant_not_found(body):
        return TenantNotFound(text)
    if status == 429:
        return StoreUnavailable(text, cause="store_overloaded")
    if status >= 500 or is_transient_message(body):
        return StoreUnavailable(text, cause="store_error")
    return StoreError(text)


def cause_of_message(message: str) -> str:
    """The retry cause of a transient failure the client reported as text.

    >>> cause_of_message("deadline exceeded"), cause_of_message("RESOURCE_EXHAUSTED"), cause_of_message("eof")
    ('store_timeout', 'store_overloaded', 'store_unreachable')
    """
    lowered = message.lower()
    if any(m in lowered for m in ("deadline", "timed out", "timeout")):
        return "store_timeout"
    if any(m in lowered for m in ("resource_exhausted", "resource exhausted", "too many requests")):
        return "store_overloaded"
    return "store_unreachable"


def _permanent(text: str, call: Call) -> StoreError:
    return InvalidQuery(text) if call is Call.QUERY else StoreError(text)


@asynccontextmanager
async def calling(what: str, call: Call, timeout_s: float) -> AsyncIterator[None]:
    """Run client calls under a deadline and translate what they raise.

    The deadline also caps the client's own retries (it sleeps 1, 2, 4, 8 s on gRPC UNAVAILABLE), so a
    caller learns that Weaviate is down within ``timeout_s`` and can back off on its own terms.
    """
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except StoreError:
        raise
    except (TimeoutError, WeaviateBaseError, httpx.HTTPError, AioRpcError, UsageError) as e:
        raise translate(e, what, call) from e
