"""The status page in a real browser (Debian's chromium, driven by playwright): a small aiohttp app with the
status routes, the gateway's static files and a real StatusCollector, reading the real Kafka and a real
worker that processes events (good ones and dead letters) while the page is open; and the real gateway with
golden queries over the shapes sample in the real Weaviate, whose Golden queries section turns red with the
reason when an asset a golden query expects is deleted, and green again when it is back.

Screenshots are saved to $XMODAL_SCREENSHOT_DIR (or the test's tmp dir): status-page.png, golden-status.png
(a golden query failing) and golden-status-green.png.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright

from services.config import GatewaySettings, ModelSettings
from services.embedding.model import load_embedder
from services.gateway.routes import STATIC_DIR
from services.gateway.server import create_app, serving, started_deps
from services.gateway.status_page import add_status_routes
from services.localstack import LocalStack
from services.monitoring.status import StatusCollector
from services.publish import EventPublisher
from services.store import AssetStore
from services.store.models import AssetObject
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.harness.catalogue import index_shapes_sample
from tests.harness.lanes import Lane, WorkerProcess, read_dead_letters, wait_stored
from tests.integration.monitoring.helpers import remove_lane, text_events

pytestmark = pytest.mark.e2e

WAIT_MS = 60_000
BAD = [(b"bad-1", b"{not json", "invalid_json"), (b"bad-2", b"[1, 2", "invalid_json"),
       (b"bad-3", json.dumps({"schema_version": 1, "asset_id": "bad-3", "modality": "text"}).encode(),
        "invalid_event")]


@pytest.fixture
async def worker(stack: Any, unique_name: str, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    lane = Lane(unique_name, tmp_path)
    await lane.create_topics()
    proc = WorkerProcess(lane)
    proc.start()
    try:
        await proc.wait_ready()
        yield proc
    finally:
        proc.stop()
        await remove_lane(lane)


@pytest.fixture
async def status_url(worker: WorkerProcess) -> AsyncIterator[tuple[str, StatusCollector]]:
    lane = worker.lane
    settings = GatewaySettings(kafka=lane.kafka, status_interval_s=0.5,
                               worker_metrics_urls=[f"http://127.0.0.1:{lane.web_port}/metrics"])
    collector = StatusCollector(settings, window_s=60)
    app = web.Application()
    add_status_routes(app, collector)
    app.router.add_static("/static/", STATIC_DIR)  # the page's script and style, as the gateway serves them
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    await collector.start()  # the caller owns the collector (the gateway: server.started_deps)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/status", collector
    finally:
        await collector.stop()
        await runner.cleanup()


@asynccontextmanager
async def open_page(url: str) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = await browser.new_context(viewport={"width": 1366, "height": 1000})
        p = await context.new_page()
        problems: list[str] = []
        p.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        p.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        await p.goto(url)
        try:
            yield p
        finally:
            await browser.close()
        assert problems == []  # no script errors, no failed requests


@pytest.fixture
async def page(status_url: tuple[str, StatusCollector]) -> AsyncIterator[Page]:
    async with open_page(status_url[0]) as p:
        yield p


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    chosen = os.environ.get("XMODAL_SCREENSHOT_DIR")
    out = Path(chosen) if chosen else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out


async def publish_waves(worker: WorkerProcess, waves: int, per_wave: int) -> None:
    """Events in waves, each stored before the next, so the charts get several intervals of data."""
    async with EventPublisher(worker.lane.kafka) as pub:
        for w in range(waves):
            published = await pub.publish_many(text_events(per_wave, prefix=f"w{w}"))
            key, value, _ = BAD[w % len(BAD)]
            if w < len(BAD):
                published.append(await pub.publish_raw(key, value))
            await wait_stored(worker.lane, published)
    await read_dead_letters(worker.lane, expected=len(BAD))


async def test_status_page_draws_live_figures(
    page: Page, worker: WorkerProcess, status_url: tuple[str, StatusCollector], shots: Path
) -> None:
    _, collector = status_url
    await page.wait_for_selector("body[data-loaded=true]", timeout=WAIT_MS)
    await publish_waves(worker, waves=6, per_wave=25)
    n_good = 6 * 25

    # charts with data: every partition's lag line, both freshness lines and the throughput line have points
    await page.wait_for_function(
        """(parts) => {
            const pts = (sel) => [...document.querySelectorAll(sel)].map((p) => +p.dataset.points);
            const lag = pts("#chart-lag path.series");
            return lag.length === parts && lag.every((n) => n >= 3)
                && pts("#chart-fresh path.series").every((n) => n >= 1) && pts("#chart-fresh path.series").length === 2
                && pts('#chart-throughput path[data-series="indexed"]')[0] >= 3;
        }""", arg=worker.lane.partitions, timeout=WAIT_MS)
    # the totals have caught up with everything published: no lag, every event counted
    await page.wait_for_function(
        """(n) => document.getElementById("total-lag").textContent === "0"
            && document.getElementById("dead-total").textContent === "3"
            && document.querySelector("#workers td:nth-child(4)").textContent.includes(`stored ${n}`)""",
        arg=n_good, timeout=WAIT_MS)

    for path in await page.locator("#chart-lag path.series").all():
        d = await path.get_attribute("d") or ""
        assert d.startswith("M") and d.count("L") >= 2  # a drawn line, not an empty path
    for figure in ("fresh-p50", "fresh-p99"):
        text = await page.locator(f"#{figure}").text_content() or ""
        assert text.endswith(("ms", " s")), (figure, text)
    snap = collector.snapshot()
    assert snap["now"]["freshness_count"] > 0 and snap["now"]["freshness_p99"] >= snap["now"]["freshness_p50"]
    reasons = {await g.get_attribute("data-reason") for g in await page.locator("#chart-dead g").all()}
    assert reasons == {reason for _, _, reason in BAD}
    bar_values = await page.locator("#chart-dead g .bar-value").all_text_contents()
    assert sorted(bar_values) == ["1", "2"]
    assert await page.locator("#kafka-pill").text_content() == "Kafka up"
    assert await page.locator("#workers-pill").text_content() == "Workers 1/1 scraped"
    # the worker exports its pause gauge: the page reads it (waited for: a transient blip would have cleared)
    await page.wait_for_function(
        """() => document.getElementById("paused-pill").textContent === "No worker paused"
            && document.querySelector("#workers tr").dataset.paused === 'false'""", timeout=WAIT_MS)
    assert await page.locator("#auth").is_hidden()
    # every offset reached the worker: no lost-events pill, no lost badge on its row
    assert await page.locator("#lost-pill").is_hidden()
    assert await page.locator("#workers .badge.lost").count() == 0
    # this app runs no golden queries: the section says how to configure them
    assert await page.locator("#golden").get_attribute("data-state") == "unconfigured"
    assert await page.locator("#golden-pill").text_content() == "not configured"
    assert "XMODAL_GOLDEN_FILE" in (await page.locator("#golden-line").text_content() or "")

    await page.screenshot(path=str(shots / "status-page.png"), full_page=True)


# --- golden queries ----------------------------------------------------------------------------------------

EXPECTED = "text-green-triangle"
GOLDEN_YAML = f"""
- name: own text comes first
  request: {{text: a photo of a green triangle, target: text, limit: 3}}
  expect: {{top1: {EXPECTED}}}
- name: red among circles
  request: {{text: a photo of a red circle, target: image, limit: 1, filters: {{field: shape, eq: circle}}}}
  expect: {{top_all: {{k: 1, metadata: {{color: red}}}}}}
"""


@dataclass(frozen=True)
class GoldenGateway:
    url: str
    store: AssetStore
    assets: dict[str, AssetObject]


@pytest.fixture
async def golden_gateway(stack: LocalStack, tmp_path: Path) -> AsyncIterator[GoldenGateway]:
    """The real gateway (space clip, shipped model) over the shapes sample, with two golden queries run every
    0.5 s, and its StatusCollector (no worker to scrape)."""
    golden_file = tmp_path / "golden.yaml"
    golden_file.write_text(GOLDEN_YAML)
    w = stack.s.weaviate.model_copy(update={"collection": f"Golden{uuid.uuid4().hex[:10]}"})
    settings = GatewaySettings(weaviate=w, kafka=stack.s.kafka, spaces={"clip": ModelSettings(device="cpu")},
                               worker_metrics_urls=[], status_interval_s=0.5, golden_file=golden_file,
                               golden_interval_s=0.5)
    embedder = await asyncio.to_thread(load_embedder, settings.spaces["clip"])
    async with AssetStore(w, {embedder.space: embedder.dim}) as store:
        try:
            assets = await index_shapes_sample(store, embedder, per_class=1)
            async with started_deps(settings, [embedder]) as deps, serving(create_app(settings, deps)) as base:
                yield GoldenGateway(f"{base}/status", store, {a.asset_id: a for a in assets})
        finally:
            await store.drop_collection()


async def golden_state(page: Page, state: str) -> None:
    await page.wait_for_selector(f'#golden[data-state="{state}"]', timeout=WAIT_MS)


async def test_golden_section_turns_red_with_the_reason_and_green_again(
    golden_gateway: GoldenGateway, shots: Path
) -> None:
    async with open_page(golden_gateway.url) as page:
        await golden_state(page, "ok")
        assert await page.locator("#golden-pill").text_content() == "all 2 pass"
        assert await page.locator("#golden-failures li").count() == 0
        assert await page.locator("#golden").evaluate("(el) => getComputedStyle(el).borderLeftColor") == \
            "rgb(6, 118, 71)"  # --ok: green

        expected = golden_gateway.assets[EXPECTED]
        assert await golden_gateway.store.write([], [EXPECTED]) == {}
        await golden_state(page, "failing")
        assert await page.locator("#golden-pill").text_content() == "1 of 2 fail"
        [failure] = await page.locator("#golden-failures li").all()
        assert await failure.locator("b").text_content() == "own text comes first"
        reason = await failure.locator("span").text_content() or ""
        assert reason.startswith("top1: 'text-") and reason.endswith(f"came first, not '{EXPECTED}'")
        line = await page.locator("#golden-line").text_content() or ""
        assert line.startswith("1/2 passed (50%) · last run ") and "golden.yaml" in line
        assert await page.locator("#golden").evaluate("(el) => getComputedStyle(el).borderLeftColor") == \
            "rgb(180, 35, 24)"  # --danger: red
        await page.screenshot(path=str(shots / "golden-status.png"), full_page=True)

        assert await golden_gateway.store.write([expected], []) == {}
        await golden_state(page, "ok")
        assert await page.locator("#golden-failures li").count() == 0
        await page.screenshot(path=str(shots / "golden-status-green.png"), full_page=True)
