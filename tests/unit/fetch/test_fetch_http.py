"""http(s) fetching against a real aiohttp server on 127.0.0.1: statuses, retries, limits, redirects."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest

from schemas.dead_letter import Reason
from services.config import FetchSettings
from services.fetch import Fetcher, FetchError

from .conftest import MAX_BYTES, Server


async def fetch(settings: FetchSettings, uri: str, **overrides: Any) -> bytes:
    async with Fetcher(settings.model_copy(update=overrides), retry_backoff_s=0.01) as fetcher:
        return await fetcher.fetch(uri)


async def fetch_error(settings: FetchSettings, uri: str, **overrides: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(settings, uri, **overrides)
    assert not info.value.retriable, "errors leaving the fetcher are final"
    return info.value


async def test_fetches_body(server: Server, settings: FetchSettings) -> None:
    assert await fetch(settings, server.url("/ok")) == b"hello"


async def test_body_of_exactly_max_bytes_is_accepted(server: Server, settings: FetchSettings) -> None:
    assert len(await fetch(settings, server.url(f"/bytes/{MAX_BYTES}"))) == MAX_BYTES


@pytest.mark.parametrize("code", [404, 410])
async def test_missing_is_not_found_and_not_retried(
    server: Server, settings: FetchSettings, code: int
) -> None:
    path = f"/status/{code}"
    before = server.hits[path]
    err = await fetch_error(settings, server.url(path))
    assert err.reason is Reason.fetch_not_found
    assert server.hits[path] - before == 1


@pytest.mark.parametrize("code", [400, 401, 403, 418])
async def test_other_client_errors_fail_without_retry(
    server: Server, settings: FetchSettings, code: int
) -> None:
    path = f"/status/{code}"
    before = server.hits[path]
    err = await fetch_error(settings, server.url(path))
    assert err.reason is Reason.fetch_failed
    assert f"HTTP {code}" in str(err)
    assert server.hits[path] - before == 1


async def test_server_error_is_retried_until_success(server: Server, settings: FetchSettings) -> None:
    path = f"/flaky/{uuid.uuid4().hex}/2"  # two 503s, then 200; retries=2 allows three attempts
    assert await fetch(settings, server.url(path)) == b"recovered"
    assert server.hits[path] == 3


async def test_server_error_after_retries_is_final_fetch_failed(
    server: Server, settings: FetchSettings
) -> None:
    path = f"/flaky/{uuid.uuid4().hex}/99"
    err = await fetch_error(settings, server.url(path), retries=1)
    assert err.reason is Reason.fetch_failed
    assert "gave up after 2 attempts" in str(err)
    assert server.hits[path] == 2


@pytest.mark.parametrize("code", [500, 502, 503, 429])
async def test_transient_statuses_are_retried(server: Server, settings: FetchSettings, code: int) -> None:
    path = f"/status/{code}"
    before = server.hits[path]
    err = await fetch_error(settings, server.url(path), retries=2)
    assert err.reason is Reason.fetch_failed
    assert server.hits[path] - before == 3


async def test_timeout_is_retried_then_fetch_failed(server: Server, settings: FetchSettings) -> None:
    before = server.hits["/slow"]
    err = await fetch_error(settings, server.url("/slow"), retries=1, read_timeout_s=0.2)
    assert err.reason is Reason.fetch_failed
    assert "timed out" in str(err)
    assert server.hits["/slow"] - before == 2


async def test_connection_refused_is_retried_then_fetch_failed(settings: FetchSettings) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = await fetch_error(settings, f"http://127.0.0.1:{port}/ok", retries=1)
    assert err.reason is Reason.fetch_failed
    assert "gave up after 2 attempts" in str(err)


async def test_too_large_by_content_length(server: Server, settings: FetchSettings) -> None:
    err = await fetch_error(settings, server.url(f"/bytes/{MAX_BYTES + 1}"))
    assert err.reason is Reason.too_large
    assert "Content-Length" in str(err)


async def test_too_large_while_streaming_without_content_length(
    server: Server, settings: FetchSettings
) -> None:
    # The server streams forever: only a reader that stops at max_bytes + 1 returns at all.
    err = await fetch_error(settings, server.url("/endless"))
    assert err.reason is Reason.too_large
    assert "body larger than" in str(err)


async def test_follows_redirects_up_to_the_limit(server: Server, settings: FetchSettings) -> None:
    assert await fetch(settings, server.url("/redirect/3"), max_redirects=3) == b"hello"


async def test_too_many_redirects_fail(server: Server, settings: FetchSettings) -> None:
    err = await fetch_error(settings, server.url("/redirect/4"), max_redirects=3)
    assert err.reason is Reason.fetch_failed
    assert "more than 3 redirects" in str(err)


async def test_no_redirects_allowed(server: Server, settings: FetchSettings) -> None:
    err = await fetch_error(settings, server.url("/redirect/1"), max_redirects=0)
    assert err.reason is Reason.fetch_failed


async def test_relative_redirect(server: Server, settings: FetchSettings) -> None:
    assert await fetch(settings, server.url("/a/relative")) == b"hello"


async def test_redirect_without_location_fails(server: Server, settings: FetchSettings) -> None:
    err = await fetch_error(settings, server.url("/no-location"))
    assert err.reason is Reason.fetch_failed
    assert "Location" in str(err)


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://10.0.0.1/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "file:///etc/passwd",
    "data:,secret",
])
async def test_redirect_to_forbidden_target_is_refused_before_connecting(
    server: Server, settings: FetchSettings, network: Any, target: str
) -> None:
    first_hop = server.url(f"/redirect-to?url={target}")
    err = await fetch_error(settings, first_hop)
    assert err.reason is Reason.fetch_forbidden
    assert set(network.connects) == {"127.0.0.1"}  # only the allow-listed first hop was ever dialled
    assert network.lookups == []  # not even a DNS query for the metadata name


async def test_redirect_to_another_loopback_address_is_refused(
    server: Server, settings: FetchSettings, network: Any
) -> None:
    # Only 127.0.0.1/32 is allowed: 127.0.0.2 (the same machine!) is refused by the guard, not by luck.
    err = await fetch_error(settings, server.url(f"/redirect-to?url={server.url('/ok', host='127.0.0.2')}"))
    assert err.reason is Reason.fetch_forbidden
    assert "XMODAL_FETCH__ALLOW_NETWORKS" in str(err)
    assert "127.0.0.2" not in network.connects


async def test_allow_networks_opens_the_second_hop(
    server: Server, settings: FetchSettings, network: Any
) -> None:
    # Allowed now, so the fetcher dials 127.0.0.2; nobody listens there, hence a connection failure.
    target = server.url("/ok", host="127.0.0.2")
    first_hop = server.url(f"/redirect-to?url={target}")
    err = await fetch_error(settings, first_hop, allow_networks=["127.0.0.0/30"])
    assert err.reason is Reason.fetch_failed
    assert "127.0.0.2" in network.connects


async def test_redirect_to_a_name_connects_only_to_its_allowed_addresses(
    server: Server, settings: FetchSettings, network: Any
) -> None:
    # localhost is 127.0.0.1 and ::1; only 127.0.0.1 is allowed, so ::1 is never dialled.
    target = server.url("/ok", host="localhost")
    assert await fetch(settings, server.url(f"/redirect-to?url={target}")) == b"hello"
    assert network.lookups == ["localhost"]
    assert set(network.connects) == {"127.0.0.1"}


async def test_not_started_fetcher_refuses_http(server: Server, settings: FetchSettings) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await Fetcher(settings).fetch(server.url("/ok"))


async def test_close_is_idempotent(settings: FetchSettings) -> None:
    fetcher = Fetcher(settings)
    await fetcher.start()
    await fetcher.start()
    await fetcher.close()
    await fetcher.close()


@pytest.mark.parametrize("uri", ["http://", "http:///path", "http://[::1/", "http://h:99999/", "http://a b/"])
async def test_malformed_url_is_invalid_event(settings: FetchSettings, uri: str) -> None:
    err = await fetch_error(settings, uri)
    assert err.reason is Reason.invalid_event


@pytest.mark.parametrize("uri", ["ftp://example.com/a.png", "gopher://x/", "javascript:alert(1)", "a.png"])
async def test_unsupported_scheme_is_invalid_event(settings: FetchSettings, uri: str) -> None:
    err = await fetch_error(settings, uri)
    assert err.reason is Reason.invalid_event
