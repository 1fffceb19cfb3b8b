"""`xmodal eval` against a live gateway: the real app on a real port, over a real Weaviate collection holding
the shapes sample (embedded with the shipped model, written through AssetStore; see tests.harness.catalogue).

The labelled set is derived from that catalogue: each class's caption -> its pictures (text->image), one
picture of each class -> its caption (image->text) and -> its class's pictures (image->image), plus one
query whose image is not an image, which the gateway refuses (400) and the run must report as failed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cli.eval import evaluate_set
from services.config import GatewaySettings, ModelSettings, RerankSettings
from services.embedding.model import HFEmbedder, load_embedder
from services.evaluation.client import GatewayClient, rerank_available
from services.evaluation.metrics import NAMES, score_run
from services.evaluation.report import render_text, report_json
from services.evaluation.runner import Answered, Failed, run_queries, search_body
from services.evaluation.sets import EvalQuery, LabelledSet
from services.gateway.routes import DEPS
from services.gateway.server import create_app, started_deps
from services.localstack import LocalStack
from services.localstack.kafka import ensure_topics
from services.samples import shapes_sample
from services.store import AssetStore
from tests.harness.catalogue import SAMPLE_PARTITIONS, index_shapes_sample
from tests.integration.gateway.conftest import _drop

pytestmark = pytest.mark.integration

PER_CLASS = 4
BAD_QID = "i2t-not-an-image"


@dataclass(frozen=True)
class Catalogue:
    settings: GatewaySettings
    labelled: LabelledSet
    images: int  # pictures in the collection


@pytest.fixture(scope="module")
def embedder() -> HFEmbedder:
    model = load_embedder(ModelSettings(device="cpu"))  # builtin:shapes-clip, a CLIP-family HFEmbedder
    assert isinstance(model, HFEmbedder)
    return model


def derive_set() -> tuple[LabelledSet, int]:
    """The labelled set of the shapes sample, judged by its metadata (colour and shape), never by a model."""
    events = shapes_sample(per_class=PER_CLASS)
    pictures: dict[tuple[str, str], list[str]] = {}
    first_data: dict[tuple[str, str], str] = {}
    captions: dict[tuple[str, str], tuple[str, str]] = {}  # class -> (text asset id, its text)
    for ev in events:
        key = (str(ev.metadata["color"]), str(ev.metadata["shape"]))
        if ev.modality is not None and ev.modality.value == "image":
            pictures.setdefault(key, []).append(ev.asset_id)
            first_data.setdefault(key, ev.data or "")
        elif ev.text is not None:
            captions[key] = (ev.asset_id, ev.text)
    queries: list[EvalQuery] = []
    qrels: dict[str, dict[str, int]] = {}
    for key, (text_id, text) in sorted(captions.items()):
        name = "-".join(key)
        queries.append(EvalQuery(f"t2i-{name}", "text->image", {"text": text}))
        qrels[f"t2i-{name}"] = dict.fromkeys(pictures[key], 1)
        queries.append(EvalQuery(f"i2t-{name}", "image->text", {"image": {"data": first_data[key]}}))
        qrels[f"i2t-{name}"] = {text_id: 1}
        queries.append(EvalQuery(f"i2i-{name}", "image->image", {"image": {"data": first_data[key]}}))
        qrels[f"i2i-{name}"] = dict.fromkeys(pictures[key], 1)
    queries.append(EvalQuery(BAD_QID, "image->text", {"image": {"data": "bm90IGFuIGltYWdl"}}))
    qrels[BAD_QID] = {next(iter(captions.values()))[0]: 1}
    return LabelledSet("shapes-sample", queries, qrels), sum(len(p) for p in pictures.values())


@pytest.fixture(scope="module")
async def catalogue(stack: LocalStack, embedder: HFEmbedder) -> AsyncIterator[Catalogue]:
    tag = uuid.uuid4().hex[:10]
    settings = GatewaySettings(
        weaviate=stack.s.weaviate.model_copy(update={"collection": f"Ev{tag}"}),
        kafka=stack.s.kafka.model_copy(update={"topic": f"ev-{tag}", "group_id": f"ev-{tag}-workers"}),
        spaces={"clip": ModelSettings(device="cpu")},
        rerank=RerankSettings(kind="none"),
    )
    await ensure_topics(settings.kafka.bootstrap_servers, {settings.kafka.topic: SAMPLE_PARTITIONS})
    try:
        async with AssetStore(settings.weaviate, {embedder.space: embedder.dim}) as store:
            objects = await index_shapes_sample(store, embedder, per_class=PER_CLASS)
        labelled, images = derive_set()
        assert {a for judged in labelled.qrels.values() for a in judged} <= {o.asset_id for o in objects}
        yield Catalogue(settings, labelled, images)
    finally:
        await _drop(settings)


@asynccontextmanager
async def live_gateway(settings: GatewaySettings, embedder: HFEmbedder) -> AsyncIterator[tuple[str, web.Application]]:
    """The real gateway app listening on a free port of 127.0.0.1: its base URL and the app."""
    async with started_deps(settings, [embedder]) as deps:
        app = create_app(settings, deps)
        async with TestServer(app, host="127.0.0.1") as server:
            yield str(server.make_url("")).rstrip("/"), app


async def test_a_run_over_the_live_gateway_gives_sensible_figures_and_reports_the_bad_query(
        catalogue: Catalogue, embedder: HFEmbedder) -> None:
    labelled = catalogue.labelled
    async with live_gateway(catalogue.settings, embedder) as (url, _):
        result = await run_queries(url, labelled.queries, api_key=None, k=10, concurrency=4, progress=False)
    assert [o.qid for o in result.outcomes] == [q.qid for q in labelled.queries]
    (bad,) = result.failed
    assert isinstance(bad, Failed) and bad.qid == BAD_QID
    assert 400 <= bad.status < 500 and bad.code != "" and bad.message
    assert len(result.answered) == len(labelled.queries) - 1
    for a in result.answered:
        assert isinstance(a, Answered) and a.space == "clip" and a.model == embedder.model_id
        assert 0 < len(a.hits) <= 10 and a.latency_ms > 0 and a.took_ms >= 0 and a.rerank is None
        assert [h.score for h in a.hits] == sorted((h.score for h in a.hits), reverse=True)

    rows = score_run(result, labelled.qrels)
    by_direction = {r.direction: r for r in rows}
    assert set(by_direction) == {"text->image", "image->text", "image->image"}
    classes = len(labelled.of_direction("text->image"))
    assert [by_direction[d].n for d in ("text->image", "image->text", "image->image")] == [classes] * 3
    assert [f.qid for f in by_direction["image->text"].failures] == [BAD_QID]
    for r in rows:
        for name in NAMES:
            e = r.measures[name]
            assert 0.0 <= e.mean <= 1.0, (r.direction, name, e)
            assert e.low is not None and e.high is not None and e.low <= e.mean <= e.high
        assert r.measures["R@10"].mean > 0, r.direction
        # a hit within 1 is one within 5 and 10; a query with any relevant asset in the top 10 is a hit
        m = {name: e.mean for name, e in r.measures.items()}
        assert m["R@1"] <= m["R@5"] <= m["R@10"] and m["Rec@10"] <= m["R@10"], (r.direction, m)
        assert r.latency is not None and r.latency.p50 > 0
    # The shipped model tells the classes apart far better than chance (10 of the pictures at random: trec recall
    # at 10 of 10 / pictures).
    assert by_direction["text->image"].measures["Rec@10"].mean > 2 * 10 / catalogue.images
    # image->image asks with a picture of the index: that picture comes first
    assert by_direction["image->image"].measures["R@1"].mean == pytest.approx(1.0)
    assert by_direction["image->image"].measures["MRR"].mean == pytest.approx(1.0)


async def test_the_cli_evaluation_probes_the_gateway_and_reports_every_space(
        catalogue: Catalogue, embedder: HFEmbedder) -> None:
    labelled = catalogue.labelled
    async with live_gateway(catalogue.settings, embedder) as (url, app):
        assert app[DEPS].reranker is None  # XMODAL_RERANK__KIND=none
        async with GatewayClient(url) as gw:
            ready = await gw.readiness()
            assert ready.ready and ready.spaces == {"clip": embedder.model_id}
            first = [search_body(q, k=1) for q in labelled.queries[:3]]
            assert await rerank_available(gw, first) is False  # 400 rerank_unavailable
        ev = await evaluate_set(labelled, url, api_key=None, k=10, rerank=None, spaces="all", progress=False)
    assert ev.skipped == []  # clip answers all three directions
    assert [(r.direction, r.space, r.space_asked, r.rerank) for r in ev.rows] == [
        ("text->image", "clip", True, False), ("image->text", "clip", True, False),
        ("image->image", "clip", True, False)]
    assert ev.failed == 1 and ev.deltas == []
    (gap,) = ev.gaps
    assert (gap.forward, gap.backward) == ("text->image", "image->text")
    text = render_text(ev)
    assert f"{BAD_QID} (image->text, clip): 422 undecodable: " in text
    doc = json.loads(json.dumps(report_json(ev, per_query=True)))
    assert doc["gateway"] == {"url": url, "models": {"clip": embedder.model_id}}
    assert sum(row["failed"] for row in doc["rows"]) == 1
    assert len(doc["rows"][0]["per_query"]) == len(labelled.of_direction("text->image"))
    assert set(doc["measures"]) == set(NAMES) == set(next(iter(doc["rows"][0]["per_query"].values())))
