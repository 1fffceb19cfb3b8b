"""Client exceptions -> retriable or permanent store errors (the exceptions are built locally, no server)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from grpc.aio import UsageError  # type: ignore[import-untyped]
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateBatchError,
    WeaviateClosedClientError,
    WeaviateConnectionError,
    WeaviateInvalidInputError,
    WeaviateQueryError,
    WeaviateStartUpError,
    WeaviateTimeoutError,
)

from services.errors import TransientError
from services.store import InvalidQuery, StoreError, StoreUnavailable
from services.store.failures import Call, calling, translate


def status_error(code: int) -> UnexpectedStatusCodeError:
    response = httpx.Response(code, json={"error": [{"message": "x"}]}, request=httpx.Request("GET", "http://w"))
    return UnexpectedStatusCodeError("Weaviate said no", response)


@pytest.mark.parametrize(
    "error",
    [
        WeaviateConnectionError("connect failed"),
        WeaviateTimeoutError("read timeout"),
        WeaviateStartUpError("could not connect"),
        status_error(429),
        status_error(503),
        status_error(500),
        WeaviateQueryError("failed to connect to all addresses; last error: UNAVAILABLE", "GRPC search"),
        WeaviateQueryError("explorer: get class: vector search: tried to browse non-existing index for Asset",
                           "GRPC search"),  # a restarted cluster node that has not loaded the shard yet
        WeaviateBatchError("<AioRpcError of RPC: status = StatusCode.DEADLINE_EXCEEDED>"),
        httpx.ConnectError("refused"),
        TimeoutError(),
        UsageError("Channel is closed"),  # a call on the channel of a node the store just left
    ],
)
def test_down_slow_or_overloaded_is_retriable(error: BaseException) -> None:
    got = translate(error, "write", Call.WRITE)
    assert isinstance(got, StoreUnavailable)
    assert isinstance(got, TransientError)
    assert got.retriable


@pytest.mark.parametrize(
    "error",
    [
        status_error(422),
        status_error(403),
        WeaviateInvalidInputError("bad"),
        WeaviateQueryError("vector lengths don't match: 3 vs 2", "GRPC search"),
    ],
)
def test_refusals_are_permanent(error: BaseException) -> None:
    got = translate(error, "write", Call.WRITE)
    assert type(got) is StoreError
    assert not got.retriable


def test_a_refused_query_is_the_callers_fault_except_permissions() -> None:
    assert isinstance(translate(status_error(422), "search", Call.QUERY), InvalidQuery)
    bad_dims = WeaviateQueryError("vector lengths don't match", "GRPC search")
    assert isinstance(translate(bad_dims, "search", Call.QUERY), InvalidQuery)
    assert type(translate(status_error(403), "search", Call.QUERY)) is StoreError


def test_a_closed_client_is_not_retried() -> None:
    got = translate(WeaviateClosedClientError(), "write", Call.WRITE)
    assert not got.retriable
    assert "not started" in str(got)


async def test_calling_caps_the_wait_and_translates() -> None:
    with pytest.raises(StoreUnavailable, match="did not answer in time"):
        async with calling("slow call", Call.QUERY, 0.01):
            await asyncio.Event().wait()
    with pytest.raises(StoreUnavailable, match=r"lost: .*connect failed"):
        async with calling("lost", Call.WRITE, 1.0):
            raise WeaviateConnectionError("connect failed")
    with pytest.raises(InvalidQuery):  # our own errors pass through untouched
        async with calling("ours", Call.QUERY, 1.0):
            raise InvalidQuery("bad")
