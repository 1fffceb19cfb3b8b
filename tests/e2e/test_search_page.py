"""The search page in a real browser (Debian's chromium, driven by playwright) against the real gateway,
the shipped model and the real Weaviate holding the shapes sample.

A screenshot of the page after a text search is saved to $XMODAL_SCREENSHOT_DIR (or the test's tmp dir).
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import weaviate
from playwright.async_api import Browser, FilePayload, Page, async_playwright

from services.config import GatewaySettings, ModelSettings
from services.embedding.model import load_embedder
from services.embedding.shapes import world
from services.gateway.server import create_app, serving, started_deps
from services.localstack import LocalStack
from services.store import AssetStore
from tests.harness.catalogue import index_shapes_sample

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
async def page_url(stack: LocalStack) -> AsyncIterator[str]:
    """The gateway (shipped model) on a free local port, over its own collection holding the sample."""
    w = stack.s.weaviate.model_copy(update={"collection": f"Page{uuid.uuid4().hex[:10]}"})
    settings = GatewaySettings(weaviate=w, kafka=stack.s.kafka, model=ModelSettings(device="cpu"))
    embedder = await asyncio.to_thread(load_embedder, settings.model)
    try:
        async with AssetStore(w, {embedder.space: embedder.dim}) as store:
            await index_shapes_sample(store, embedder)
        async with started_deps(settings, embedder) as deps, serving(create_app(settings, deps)) as base:
            yield base
    finally:
        async with weaviate.use_async_with_custom(
            http_host=w.host, http_port=w.http_port, http_secure=False,
            grpc_host=w.host, grpc_port=w.grpc_port, grpc_secure=False,
        ) as client:
            await client.collections.delete(w.collection)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser: Browser, page_url: str) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    p = await context.new_page()
    problems: list[str] = []
    p.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # The browser logs every 4xx answer as a console error; the page shows those itself (tested below).
    p.on("console", lambda msg: problems.append(msg.text)
         if msg.type == "error" and "status of 4" not in msg.text else None)
    await p.goto(page_url)
    yield p
    await context.close()
    assert problems == []  # no script errors and no failed requests behind the scenes


def screenshot_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("XMODAL_SCREENSHOT_DIR")
    out = Path(chosen) if chosen else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out


def png(color: str, shape: str, seed: int = 77) -> bytes:
    buf = io.BytesIO()
    world.draw_image(random.Random(seed), color, shape).save(buf, "PNG")
    return buf.getvalue()


def upload(name: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": "image/png", "buffer": data}


async def searches(page: Page) -> int:
    return int(await page.get_attribute("#results", "data-searches") or 0)


async def after_search(page: Page, before: int) -> None:
    await page.wait_for_function(
        f"() => Number(document.querySelector('#results').dataset.searches || 0) > {before}", timeout=WAIT_MS)


async def results(page: Page) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = await page.eval_on_selector_all("#results .result", """cards => cards.map(c => ({
        asset_id: c.dataset.assetId, modality: c.dataset.modality, score: Number(c.dataset.score),
        meta: JSON.parse(c.dataset.meta)}))""")
    return cards


def classes(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["meta"]["color"], r["meta"]["shape"]) for r in found]


async def thumbnails_loaded(page: Page, n: int) -> None:
    await page.wait_for_function(f"""() => {{
        const imgs = Array.from(document.querySelectorAll('#results .result img')).slice(0, {n});
        return imgs.length === {n} && imgs.every(i => i.complete && i.naturalWidth > 0);
    }}""", timeout=WAIT_MS)


async def test_text_search_shows_yellow_stars_first(page: Page, tmp_path: Path) -> None:
    before = await searches(page)
    await page.fill("#q", "a photo of a yellow star")
    await page.press("#q", "Enter")
    await after_search(page, before)
    found = await results(page)
    assert classes(found)[:4] == [("yellow", "star")] * 4
    assert all(r["modality"] == "image" for r in found)  # the page searches images by default
    status = await page.text_content("#status") or ""
    assert "model builtin:shapes-clip" in status
    assert " ms" in status
    assert await page.is_hidden("#error")
    await thumbnails_loaded(page, 8)
    out = screenshot_dir(tmp_path) / "search-page.png"
    await page.screenshot(path=str(out), full_page=False)
    assert out.stat().st_size > 10_000


async def test_upload_finds_similar_images(page: Page) -> None:
    before = await searches(page)
    await page.set_input_files("#file", files=[upload("triangle.png", png("green", "triangle"))])
    await after_search(page, before)
    top = classes(await results(page))[:4]
    assert top[0] == ("green", "triangle")
    assert {c for c, _ in top} == {"green"}
    assert top.count(("green", "triangle")) >= 3  # image->image Recall@1 of the shapes model is ~93%
    assert "triangle.png" in (await page.text_content("#active-label") or "")
    assert await page.is_visible("#drop-preview")


async def test_more_like_this_and_category_filter(page: Page) -> None:
    before = await searches(page)
    await page.fill("#q", "a photo of a blue circle")
    await page.press("#q", "Enter")
    await after_search(page, before)
    first = (await results(page))[0]
    before = await searches(page)
    await page.click("#results .result:first-child .more")
    await after_search(page, before)
    similar = await results(page)
    assert first["asset_id"] not in [r["asset_id"] for r in similar]
    assert classes(similar)[:3] == [("blue", "circle")] * 3
    options = await page.eval_on_selector_all("#category option", "os => os.map(o => o.value)")
    assert "circle" in options
    before = await searches(page)
    await page.select_option("#category", "circle")
    await after_search(page, before)
    assert {r["meta"]["category"] for r in await results(page)} == {"circle"}


async def test_target_switch_finds_texts(page: Page) -> None:
    before = await searches(page)
    await page.fill("#q", "a photo of a red square")
    await page.press("#q", "Enter")
    await after_search(page, before)
    before = await searches(page)
    await page.check("input[name=target][value=text]")
    await after_search(page, before)
    found = await results(page)
    assert found[0]["asset_id"] == "text-red-square"
    assert {r["modality"] for r in found} == {"text"}
    assert "a photo of a red square" in (await page.text_content("#results .result:first-child .media") or "")


async def test_api_errors_are_shown(page: Page) -> None:
    before = await searches(page)
    await page.set_input_files("#file", files=[upload("broken.png", b"this is not a png")])
    await after_search(page, before)
    assert await page.is_visible("#error")
    text = await page.text_content("#error") or ""
    assert "undecodable" in text
    assert "HTTP 422" in text
    assert await results(page) == []
