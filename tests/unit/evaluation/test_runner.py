"""The runner and its client against the fake gateway of conftest.py (tests/integration/evaluation runs
the real one): bodies sent, answers kept as data, 4xx recorded as failures, 429 retried, and the errors
that stop a run."""

from __future__ import annotations

import socket

import pytest

from services.evaluation.client import GatewayClient, Reply, rerank_available, space_answers
from services.evaluation.errors import GatewayRefused, GatewayUnreachable
from services.evaluation.runner import Answered, Failed, outcome_of, run_queries, search_body
from services.evaluation.sets import EvalQuery
from tests.unit.evaluation.conftest import FakeGateway

QUERIES = [EvalQuery("t1", "text->image", {"text": "a red circle"}),
           EvalQuery("bad", "image->text", {"image": {"data": "bm90IGFuIGltYWdl"}}),
           EvalQuery("t2", "text->image", {"text": "a blue star", "filters": {"field": "n", "gt": 1}})]


def test_search_body_fills_target_and_limit_and_the_run_options() -> None:
    assert search_body(QUERIES[2], k=20) == {"text": "a blue star", "filters": {"field": "n", "gt": 1},
                                            "target": "image", "limit": 20}
    kept = EvalQuery("q", "image->text", {"image": {"uri": "file:///x.png"}, "target": "text"})
    assert search_body(kept, k=10, rerank=True, space="clip") == {
        "image": {"uri": "file:///x.png"}, "target": "text", "limit": 10, "rerank": True, "space": "clip"}


async def test_a_run_keeps_rankings_timings_and_failures_in_query_order(fake: tuple[FakeGateway, str]) -> None:
    gw, url = fake
    result = await run_queries(url, QUERIES, api_key=None, k=10, concurrency=2, progress=False)
    assert [o.qid for o in result.outcomes] == ["t1", "bad", "t2"]
    t1, bad, _ = result.outcomes
    assert isinstance(t1, Answered) and isinstance(bad, Failed)
    assert (t1.ranking, t1.took_ms, t1.space, t1.model, t1.rerank) == (["b", "a"], 1.25, "clip",
                                                                       "builtin:shapes-clip", None)
    assert t1.latency_ms > 0
    assert (bad.status, bad.code, bad.message) == (400, "undecodable", "the image cannot be decoded")
    assert [o.qid for o in result.failed] == ["bad"] and len(result.answered) == 2
    assert sorted(b["limit"] for b in gw.bodies) == [10, 10, 10]
    assert all("rerank" not in b and "space" not in b for b in gw.bodies)


async def test_rerank_and_space_are_sent_and_the_rerank_block_kept(fake: tuple[FakeGateway, str]) -> None:
    gw, url = fake
    gw.reranker = True
    result = await run_queries(url, QUERIES[:1], api_key=None, rerank=True, space="clip", progress=False)
    (t1,) = result.outcomes
    assert isinstance(t1, Answered) and t1.rerank is not None
    assert (t1.rerank.name, t1.rerank.took_ms, t1.rerank.candidates, t1.rerank.degraded) == ("large", 2.5, 20, False)
    assert gw.bodies[0]["rerank"] is True and gw.bodies[0]["space"] == "clip"
    assert (result.rerank, result.space, result.k) == (True, "clip", 10)


async def test_429_is_retried_then_answered(fake: tuple[FakeGateway, str]) -> None:
    gw, url = fake
    gw.busy = 2
    result = await run_queries(url, QUERIES[:1], api_key=None, progress=False)
    assert isinstance(result.outcomes[0], Answered) and len(gw.bodies) == 3
    gw.busy = 10
    result = await run_queries(url, QUERIES[:1], api_key=None, progress=False)
    failed = result.outcomes[0]
    assert isinstance(failed, Failed) and (failed.status, failed.code) == (429, "overloaded")


async def test_probes(fake: tuple[FakeGateway, str]) -> None:
    gw, url = fake
    async with GatewayClient(url) as client:
        assert (await client.readiness()).spaces == {"clip": "m", "clap": "c"}
        bodies = [search_body(q, k=1) for q in QUERIES]
        assert await rerank_available(client, bodies) is False
        gw.reranker = True
        assert await rerank_available(client, bodies[1:]) is True  # the undecodable query passes it on
        assert await space_answers(client, bodies[0], "clip") is True
        assert await space_answers(client, bodies[0], "clap") is False
        with pytest.raises(GatewayRefused, match="cannot tell whether the gateway reranks"):
            await rerank_available(client, bodies[1:2])


async def test_refusals_that_stop_a_run(fake: tuple[FakeGateway, str]) -> None:
    _, url = fake
    async with GatewayClient(url) as client:
        with pytest.raises(GatewayRefused, match="pass --api-key"):
            await client._call("GET", "/locked", None)
        with pytest.raises(GatewayRefused, match="not a JSON object: is --gateway an xmodal gateway"):
            await client._call("GET", "/html", None)
        with pytest.raises(GatewayRefused, match="answered 400 undecodable"):
            await client.search(search_body(QUERIES[1], k=1))


async def test_no_gateway_says_to_start_one() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the run: nothing listens there
    with pytest.raises(GatewayUnreachable, match=r"cannot reach the gateway at http://127.0.0.1:\d+ .*make demo"):
        await run_queries(f"http://127.0.0.1:{port}", QUERIES, api_key=None, progress=False)


def test_a_200_without_the_response_fields_is_refused() -> None:
    with pytest.raises(GatewayRefused, match="query t1: the search answer lacks 'took_ms'"):
        outcome_of(QUERIES[0], Reply(200, {"results": [], "space": "clip", "model": "m"}, 1.0))
    failed = outcome_of(QUERIES[0], Reply(404, {}, 1.0))
    assert isinstance(failed, Failed) and (failed.code, failed.message) == ("http_404", "HTTP 404")
