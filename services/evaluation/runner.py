"""Ask a labelled set's queries of a live gateway and keep what came back, per query.

Each query's request is sent as POST /v1/search with ``limit`` = k, the direction's ``target`` when the
request has none, and ``rerank`` / ``space`` when the run asks for them. An answered query keeps its ranked
asset ids with scores, the client-side latency, the response's ``took_ms``, ``space``, ``model`` and
``rerank`` block. A query the gateway refuses (4xx, or 429/503 after the retries) is kept as
:class:`Failed` with the error's code and message: reports count and show failures, they never drop them.
No connection at all aborts the run (GatewayUnreachable says to start the gateway).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.evaluation.client import GatewayClient, Reply
from services.evaluation.errors import GatewayRefused
from services.evaluation.sets import EvalQuery


@dataclass(frozen=True)
class Hit:
    asset_id: str
    score: float


@dataclass(frozen=True)
class RerankInfo:
    """The response's ``rerank`` block: which reranker, its time, how many candidates, and whether it fell
    back to the first-stage order (``degraded``, with a ``reason``)."""

    name: str
    took_ms: float
    candidates: int
    degraded: bool
    reason: str | None


@dataclass(frozen=True)
class Answered:
    qid: str
    direction: str
    hits: list[Hit]
    latency_ms: float
    took_ms: float
    space: str
    model: str
    rerank: RerankInfo | None

    @property
    def ranking(self) -> list[str]:
        return [h.asset_id for h in self.hits]


@dataclass(frozen=True)
class Failed:
    qid: str
    direction: str
    status: int
    code: str
    message: str


Outcome = Answered | Failed


@dataclass(frozen=True)
class RunResult:
    """One pass over a list of queries with one setting of k, rerank and space."""

    base_url: str
    k: int
    rerank: bool
    space: str | None  # the space asked for; None: the gateway's own choice
    outcomes: list[Outcome]
    wall_s: float
    started_at: float  # Unix time

    @property
    def answered(self) -> list[Answered]:
        return [o for o in self.outcomes if isinstance(o, Answered)]

    @property
    def failed(self) -> list[Failed]:
        return [o for o in self.outcomes if isinstance(o, Failed)]


def search_body(query: EvalQuery, *, k: int, rerank: bool = False, space: str | None = None) -> dict[str, Any]:
    """The /v1/search body a query is asked with.

    >>> search_body(EvalQuery("q", "text->image", {"text": "a red circle"}), k=10, rerank=True)
    {'text': 'a red circle', 'target': 'image', 'limit': 10, 'rerank': True}
    """
    body: dict[str, Any] = {**query.request, "target": query.request.get("target", query.target), "limit": k}
    if rerank:
        body["rerank"] = True
    if space is not None:
        body["space"] = space
    return body


async def run_queries(base_url: str, queries: Sequence[EvalQuery], *, api_key: str | None, k: int = 10,
                      rerank: bool = False, space: str | None = None, concurrency: int = 4,
                      progress: bool = True) -> RunResult:
    """Ask every query (at most ``concurrency`` at a time) and return the outcomes in query order."""
    async with GatewayClient(base_url, api_key=api_key) as gw:
        return await run_with(gw, queries, k=k, rerank=rerank, space=space, concurrency=concurrency,
                              progress=progress)


async def run_with(gw: GatewayClient, queries: Sequence[EvalQuery], *, k: int = 10, rerank: bool = False,
                   space: str | None = None, concurrency: int = 4, progress: bool = True,
                   label: str | None = None) -> RunResult:
    """run_queries over an open client (the CLI shares one between its probes and its runs)."""
    from tqdm import tqdm

    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    started, started_at = time.perf_counter(), time.time()
    gate = asyncio.Semaphore(concurrency)
    desc = label or f"eval k={k}" + (" rerank" if rerank else "") + (f" space={space}" if space else "")
    with tqdm(total=len(queries), unit="query", desc=desc, file=sys.stderr, disable=not progress) as bar:

        async def one(q: EvalQuery) -> Outcome:
            async with gate:
                reply = await gw.post_search(search_body(q, k=k, rerank=rerank, space=space))
            bar.update(1)
            return outcome_of(q, reply)

        tasks = [asyncio.create_task(one(q)) for q in queries]
        try:
            outcomes = await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return RunResult(gw.base_url, k, rerank, space, list(outcomes), time.perf_counter() - started,
                     started_at)


def outcome_of(q: EvalQuery, reply: Reply) -> Outcome:
    """An answer as data: the ranked hits and timings of a 200, the error of anything else."""
    if not reply.ok:
        return Failed(q.qid, q.direction, reply.status, reply.error_code, reply.error_message)
    body = reply.body
    try:
        hits = [Hit(str(r["asset_id"]), float(r["score"])) for r in body["results"]]
        return Answered(q.qid, q.direction, hits, reply.latency_ms, float(body["took_ms"]), str(body["space"]),
                        str(body["model"]), _rerank_info(body.get("rerank")))
    except (KeyError, TypeError, ValueError) as exc:
        raise GatewayRefused(f"query {q.qid}: the search answer lacks {exc} or has the wrong type; is --gateway "
                             "an xmodal gateway of this version?") from None


def _rerank_info(block: Any) -> RerankInfo | None:
    if block is None:
        return None
    return RerankInfo(name=str(block["name"]), took_ms=float(block["took_ms"]), candidates=int(block["candidates"]),
                      degraded=bool(block["degraded"]), reason=block.get("reason"))
