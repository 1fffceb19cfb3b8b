"""The status page in a real browser (Debian's chromium, driven by playwright): a small aiohttp app with the
status routes, the gateway's static files and a real StatusCollector, reading the real Kafka and a real
worker that processes events (good ones and dead letters) while the page is open.

A screenshot is saved to $XMODAL_SCREENSHOT_DIR (or the test's tmp dir) as status-page.png.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright

from services.config import GatewaySettings
from services.gateway.routes import STATIC_DIR
from services.gateway.status_page import add_status_routes
from services.monitoring.status import StatusCollector
from services.publish import EventPublisher
from tests.harness.lanes import Lane, WorkerProcess, read_dead_letters, wait_stored
from tests.integration.monitoring.helpers import remove_lane, text_events

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
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


@pytest.fixture
async def page(status_url: tuple[str, StatusCollector]) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = await browser.new_context(viewport={"width": 1366, "height": 1000})
        p = await context.new_page()
        problems: list[str] = []
        p.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        p.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        await p.goto(status_url[0])
        try:
            yield p
        finally:
            await browser.close()
        assert problems == []  # no script errors, no failed requests


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
    assert await page.locator("#auth").is_hidden()

    await page.screenshot(path=str(shots / "status-page.png"), full_page=True)
