"""Golden queries against the real gateway over the real Weaviate holding the demo catalogue (what `xmodal demo`
publishes: single shapes and scenes in clip, sounds in clap, embedded with the shipped models).

The must-show: a golden query whose expected asset is deleted from the store turns all three red, the
gateway's own schedule (read from /metrics and /v1/status, as a dashboard or an operator would) and the CLI
check (`xmodal eval --golden FILE --gateway URL`, and check_golden over HTTP); restoring the asset turns them
green again. And the shipped demo golden file holds for the demo catalogue.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from cli.demo import PER_CLASS, SOUNDS_PER_CLASS
from cli.invoke import ROOT, XMODAL, with_root
from services.config import BUILTIN_SOUNDS_MODEL, GatewaySettings, ModelSettings, segments_vector
from services.embedding.model import Embedder, HFEmbedder, load_embedder
from services.evaluation.client import GatewayClient
from services.evaluation.golden import DEMO_GOLDEN_FILE, GoldenReport, check_golden, load_golden
from services.gateway.golden import GOLDEN, searcher_search
from services.gateway.routes import SEARCHER
from services.gateway.server import create_app, serving, started_deps
from services.localstack import LocalStack
from services.localstack.kafka import ensure_topics
from services.samples import scenes_sample, shapes_sample, sounds_sample
from services.store import AssetStore
from services.store.models import AssetObject
from services.video_samples import clips_sample
from tests.harness.catalogue import MAX_PIXELS, SAMPLE_PARTITIONS, sample_objects, video_objects
from tests.integration.gateway.conftest import _drop

pytestmark = pytest.mark.integration

WAIT_S = 60.0  # generous: each run is two searches, one every 0.5 s
EXPECTED = "text-green-triangle"
OWN_TEXT = "own text comes first"
HUM = "a low hum is a tone"
GOLDEN_YAML = f"""
- name: {OWN_TEXT}
  request: {{text: a photo of a green triangle, target: text, limit: 3}}
  expect:
    top1: {EXPECTED}
    ids_in_top: {{k: 3, ids: [{EXPECTED}]}}
- name: {HUM}
  request: {{text: a low hum, target: audio, limit: 3}}
  expect:
    top_all: {{k: 3, metadata: {{category: tone}}}}
"""


@dataclass(frozen=True)
class Live:
    base_url: str
    app: web.Application
    store: AssetStore
    objects: dict[str, AssetObject]
    golden_file: Path


@pytest.fixture(scope="module")
async def live(stack: LocalStack, shapes_embedder: HFEmbedder, tmp_path_factory: pytest.TempPathFactory
               ) -> AsyncIterator[Live]:
    tag = uuid.uuid4().hex[:10]
    golden_file = tmp_path_factory.mktemp("golden") / "golden.yaml"
    golden_file.write_text(GOLDEN_YAML)
    settings = GatewaySettings(
        weaviate=stack.s.weaviate.model_copy(update={"collection": f"Gd{tag}"}),
        kafka=stack.s.kafka.model_copy(update={"topic": f"gd-{tag}", "group_id": f"gd-{tag}-workers"}),
        spaces={"clip": ModelSettings(device="cpu"), "clap": ModelSettings(name=BUILTIN_SOUNDS_MODEL, device="cpu")},
        worker_metrics_urls=[], golden_file=golden_file, golden_interval_s=0.5,
    )
    sounds = load_embedder(ModelSettings(name=BUILTIN_SOUNDS_MODEL, space="clap", device="cpu"))
    await ensure_topics(settings.kafka.bootstrap_servers, {settings.kafka.topic: SAMPLE_PARTITIONS})
    try:
        spaces = {"clip": shapes_embedder.dim, "clap": sounds.dim, segments_vector("clip"): shapes_embedder.dim}
        async with AssetStore(settings.weaviate, spaces) as store:
            objects = await asyncio.to_thread(demo_catalogue, shapes_embedder, sounds)
            await store.ensure_collection()
            assert await store.write(objects, []) == {}
            async with started_deps(settings, [shapes_embedder, sounds]) as deps:
                app = create_app(settings, deps)
                async with serving(app) as base_url:
                    yield Live(base_url, app, store, {o.asset_id: o for o in objects}, golden_file)
    finally:
        await _drop(settings)


def demo_catalogue(clip: Embedder, clap: Embedder) -> list[AssetObject]:
    """What `xmodal demo` publishes; each asset in the space of its own sample set."""
    pictures = sample_objects(clip, shapes_sample(PER_CLASS) + scenes_sample(), max_pixels=MAX_PIXELS)
    sounds = sample_objects(clap, sounds_sample(SOUNDS_PER_CLASS), max_pixels=MAX_PIXELS)
    clips = video_objects(clip, clips_sample(), first_n=len(pictures) + len(sounds))  # keyframes only, as in clip
    return pictures + sounds + clips


# --- what an operator reads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One look at all three: the gateway's metrics, its status JSON, and the CLI check (HTTP and command)."""

    pass_ratio: float
    query_ok: dict[str, float]
    runs: float
    status: dict[str, Any]
    http: GoldenReport
    cli_rc: int | None  # None while cli/eval.py does not exist
    cli_out: str


async def look(live: Live, session: aiohttp.ClientSession) -> Seen:
    async with session.get(f"{live.base_url}/metrics") as resp:
        assert resp.status == 200
        families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    ok = {s.labels["name"]: s.value for s in families["xmodal_golden_query_ok"].samples}
    [ratio] = families["xmodal_golden_pass_ratio"].samples
    [runs] = [s for s in families["xmodal_golden_runs"].samples if s.name == "xmodal_golden_runs_total"]
    async with session.get(f"{live.base_url}/v1/status") as resp:
        assert resp.status == 200
        status = (await resp.json())["golden"]
    async with GatewayClient(live.base_url) as gw:
        http = await check_golden(load_golden(live.golden_file), gw.search)
    rc, out = await cli_check(live)
    return Seen(ratio.value, ok, runs.value, status, http, rc, out)


async def cli_check(live: Live) -> tuple[int | None, str]:
    if not (ROOT / "cli" / "eval.py").exists():  # the eval helper's command, not there yet
        return None, ""
    proc = await asyncio.create_subprocess_exec(
        *XMODAL, "eval", "--golden", str(live.golden_file), "--gateway", live.base_url,
        env=with_root(dict(os.environ)), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(180):  # a subprocess: the gateway keeps serving on this loop meanwhile
        out, _ = await proc.communicate()
    return proc.returncode, out.decode()


async def next_runs(live: Live) -> None:
    """Wait for a run that started after now (the one in flight may have started before)."""
    schedule = live.app[GOLDEN]
    async with asyncio.timeout(WAIT_S):
        await schedule.wait_runs(schedule.runs + 2)


def assert_green(seen: Seen) -> None:
    assert seen.pass_ratio == 1.0
    assert seen.query_ok[OWN_TEXT] == 1.0 and seen.query_ok[HUM] == 1.0
    assert seen.status["ok"] is True and seen.status["last"]["failed"] == [], seen.status
    assert seen.status["last"]["passed"] == seen.status["last"]["total"] == 2
    assert seen.http.ok, seen.http.failed
    if seen.cli_rc is not None:
        assert seen.cli_rc == 0, seen.cli_out
        assert "2 of 2 passed" in seen.cli_out


# --- tests -----------------------------------------------------------------------------------------------


async def test_the_demo_golden_file_holds_for_the_demo_catalogue(live: Live) -> None:
    goldens = load_golden(DEMO_GOLDEN_FILE)
    report = await check_golden(goldens, searcher_search(live.app[SEARCHER], timeout_s=10.0))
    assert report.failed == [] and report.passed == len(goldens)


async def test_a_deleted_expected_asset_turns_metrics_status_and_cli_red_and_restoring_it_green(
    live: Live,
) -> None:
    async with aiohttp.ClientSession() as session:
        await next_runs(live)
        before = await look(live, session)
        assert_green(before)
        assert before.status["configured"] and before.status["file"] == str(live.golden_file)

        expected = live.objects[EXPECTED]
        assert await live.store.write([], [EXPECTED]) == {}  # the store loses the asset the query expects
        await next_runs(live)
        red = await look(live, session)
        assert red.pass_ratio == 0.5
        assert red.query_ok == {OWN_TEXT: 0.0, HUM: 1.0}
        assert red.runs > before.runs
        assert red.status["ok"] is False and red.status["last"]["passed"] == 1
        [failure] = red.status["last"]["failed"]
        assert failure["name"] == OWN_TEXT
        assert failure["reason"].startswith("top1: 'text-") and f"came first, not '{EXPECTED}'" in failure["reason"]
        assert f"ids_in_top: {EXPECTED} not in the top 3" in failure["reason"]
        # the CLI check sees what the schedule sees: the same failure, for the same reason
        assert [(f.name, f.reason) for f in red.http.failed] == [(OWN_TEXT, failure["reason"])]
        if red.cli_rc is not None:
            assert red.cli_rc == 1, red.cli_out
            assert f"FAIL {OWN_TEXT}: top1: " in red.cli_out and "1 of 2 passed" in red.cli_out

        assert await live.store.write([expected], []) == {}  # restored
        await next_runs(live)
        after = await look(live, session)
        assert_green(after)
        assert after.runs > red.runs
