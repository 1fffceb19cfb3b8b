"""The evaluation's HTTP client of a live gateway: /readyz, POST /v1/search, and the probes that decide
what to evaluate (is a reranker configured? can this space answer this direction?).

Answers are data: :class:`Reply` holds the status and the JSON body of every answer, a 4xx included, and
the caller decides. Only what no query can get past raises: no connection at all
(:class:`GatewayUnreachable`, "start the gateway"), a refused API key, a body that is not JSON. 429 and 503
are retried (Retry-After honoured, capped) before they are returned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import aiohttp

from services.evaluation.errors import GatewayRefused, GatewayUnreachable

RETRIED: Final = frozenset({429, 503})
MAX_RETRY_WAIT_S: Final = 5.0
START_HINT: Final = "start it (`make demo`, or `./xmodal gateway`) or point --gateway at a running one"


@dataclass(frozen=True)
class Reply:
    """One answer of the gateway: HTTP status, JSON body, and the client-side latency of the last attempt."""

    status: int
    body: dict[str, Any]
    latency_ms: float
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def error_code(self) -> str:
        """The error answer's code (``{"error": {"code"}}``), or ``http_<status>`` when it has none."""
        error = self.body.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        return str(code) if code else f"http_{self.status}"

    @property
    def error_message(self) -> str:
        error = self.body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        return str(message) if message else f"HTTP {self.status}"


@dataclass(frozen=True)
class Readiness:
    """What GET /readyz says: ready or not, per check, and the model of every space."""

    ready: bool
    checks: dict[str, bool]
    spaces: dict[str, str]


class GatewayClient:
    """``async with GatewayClient(url) as gw``: one HTTP session towards one gateway."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 60.0,
                 retries: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GatewayClient:
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        self._session = aiohttp.ClientSession(headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def readiness(self) -> Readiness:
        reply = await self._call("GET", "/readyz", None)
        if reply.status not in (200, 503) or "ready" not in reply.body:
            raise GatewayRefused(f"{self.base_url}/readyz answered {reply.status} without a readiness body: "
                                 "is --gateway an xmodal gateway?")
        spaces = reply.body.get("spaces") or {}
        checks = reply.body.get("checks") or {}
        return Readiness(bool(reply.body["ready"]), {str(k): bool(v) for k, v in checks.items()},
                         {str(k): str(v) for k, v in spaces.items()})

    async def post_search(self, body: dict[str, Any]) -> Reply:
        """POST /v1/search; every answer is returned (429/503 only after the retries), none raises."""
        for attempt in range(self.retries + 1):
            reply = await self._call("POST", "/v1/search", body)
            if reply.status not in RETRIED or attempt == self.retries:
                return reply
            await asyncio.sleep(self._retry_wait(reply, attempt))
        raise AssertionError("unreachable")  # the loop always returns

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """The response JSON of a search that succeeded; GatewayRefused (with the error) otherwise. The
        ``search`` callable golden queries take."""
        reply = await self.post_search(body)
        if not reply.ok:
            raise GatewayRefused(f"the search answered {reply.status} {reply.error_code}: {reply.error_message}")
        return reply.body

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Reply:
        if self._session is None:
            raise RuntimeError("use GatewayClient as `async with GatewayClient(url) as gw`")
        url = self.base_url + path
        started = time.perf_counter()
        try:
            async with self._session.request(method, url, json=body) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:
            return Reply(0, {"error": {"code": "client_timeout",
                                       "message": f"no answer within {self.timeout_s:.0f}s"}},
                         (time.perf_counter() - started) * 1000)
        except aiohttp.ClientConnectionError as exc:
            raise GatewayUnreachable(f"cannot reach the gateway at {self.base_url} ({exc}); {START_HINT}") from None
        latency_ms = (time.perf_counter() - started) * 1000
        if status in (401, 403):
            raise GatewayRefused(f"the gateway refused the request ({status}): pass --api-key with one of its "
                                 "keys (XMODAL_API_KEYS)")
        parsed = _json_object(raw)
        if parsed is None:
            raise GatewayRefused(f"{url} answered {status} with a body that is not a JSON object: is --gateway "
                                 "an xmodal gateway?")
        return Reply(status, parsed, latency_ms, _seconds(retry_after))

    @staticmethod
    def _retry_wait(reply: Reply, attempt: int) -> float:
        wait = reply.retry_after_s if reply.retry_after_s is not None else 0.5 * 2 ** attempt
        return min(max(wait, 0.0), MAX_RETRY_WAIT_S)


def _seconds(header: str | None) -> float | None:
    try:
        return None if header is None else float(header)
    except ValueError:
        return None  # an HTTP date: the default backoff is close enough


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


async def rerank_available(gw: GatewayClient, requests: Sequence[dict[str, Any]], *, tries: int = 3) -> bool:
    """Whether the gateway reranks: searches with ``rerank: true`` (``limit: 1``). True on the first answer,
    False on 400 ``rerank_unavailable``; a query refused for another reason passes the question to the next
    one, up to ``tries``."""
    last: Reply | None = None
    for request in requests[:tries]:
        last = await gw.post_search({**request, "limit": 1, "rerank": True})
        if last.ok:
            return True
        if last.error_code == "rerank_unavailable":
            return False
        if last.error_code == "invalid_request" and "rerank" in last.error_message:
            raise GatewayRefused(f"the gateway does not take the `rerank` option ({last.error_message}); "
                                 "update it, or use --rerank off")
    detail = f": {last.status} {last.error_code}: {last.error_message}" if last is not None else ""
    raise GatewayRefused(f"cannot tell whether the gateway reranks; the probe searches failed{detail}. "
                         "Fix the set's first queries, or choose --rerank off|on")


async def space_answers(gw: GatewayClient, request: dict[str, Any], space: str) -> bool:
    """Whether ``space`` answers ``request`` (a search with ``space`` set): False on 400 ``no_space``."""
    reply = await gw.post_search({**request, "limit": 1, "space": space})
    if reply.ok:
        return True
    if reply.error_code == "no_space":
        return False
    if reply.error_code == "invalid_request" and "space" in reply.error_message:
        raise GatewayRefused(f"the gateway does not take the `space` option ({reply.error_message}); "
                             "update it, or leave --spaces out")
    # Another refusal (e.g. this query is malformed) is not the space's doing: the run records it per query.
    return True
