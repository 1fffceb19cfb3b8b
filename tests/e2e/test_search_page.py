"""The search page in a real browser (Debian's chromium, driven by playwright) against the real gateway,
the shipped models and the real Weaviate: one gateway (clip) over the shapes sample, one (clap) over the
sounds sample.

Screenshots of the page after a text search (search-page.png) and a sound search (search-page-sounds.png)
are saved to $XMODAL_SCREENSHOT_DIR (or the test's tmp dir).
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import soundfile as sf  # type: ignore[import-untyped]  # no py.typed in soundfile 0.14
import weaviate
from playwright.async_api import Browser, FilePayload, Page

from services.config import BUILTIN_SOUNDS_MODEL, GatewaySettings, ModelSettings
from services.embedding.model import Embedder, load_embedder
from services.embedding.shapes import world
from services.embedding.sounds import world as sounds_world
from services.gateway.server import create_app, serving, started_deps
from services.localstack import LocalStack
from services.store import AssetStore, vector_dims
from services.store.models import AssetObject
from tests.harness.catalogue import index_shapes_sample, index_sounds_sample

pytestmark = pytest.mark.e2e

WAIT_MS = 30_000


Indexer = Callable[[AssetStore, Embedder], Awaitable[list[AssetObject]]]


@dataclass(frozen=True)
class Served:
    """A gateway on a free local port, over its own collection, and the sample it holds."""

    url: str
    assets: list[AssetObject]


@asynccontextmanager
async def gateway(stack: LocalStack, space: str, model: ModelSettings, index: Indexer, *,
                  all_vectors: bool = False) -> AsyncIterator[Served]:
    """A gateway whose one space is ``space`` (``model``), over a new collection filled by ``index``; with
    ``all_vectors`` the collection has every named vector of the space (captions', videos' segments)."""
    w = stack.s.weaviate.model_copy(update={"collection": f"Page{uuid.uuid4().hex[:10]}"})
    settings = GatewaySettings(weaviate=w, kafka=stack.s.kafka, spaces={space: model})
    embedder = await asyncio.to_thread(load_embedder, settings.spaces[space])
    try:
        dims = vector_dims([embedder]) if all_vectors else {embedder.space: embedder.dim}
        async with AssetStore(w, dims) as store:
            assets = await index(store, embedder)
        async with started_deps(settings, [embedder]) as deps, serving(create_app(settings, deps)) as base:
            yield Served(base, assets)
    finally:
        async with weaviate.use_async_with_custom(
            http_host=w.host, http_port=w.http_port, http_secure=False,
            grpc_host=w.host, grpc_port=w.grpc_port, grpc_secure=False,
        ) as client:
            await client.collections.delete(w.collection)


@pytest.fixture(scope="module")
async def page_url(stack: LocalStack) -> AsyncIterator[str]:
    """The gateway with the shipped shapes model (space clip) over the shapes sample."""
    async with gateway(stack, "clip", ModelSettings(device="cpu"), index_shapes_sample) as served:
        yield served.url


@pytest.fixture(scope="module")
async def sounds_url(stack: LocalStack) -> AsyncIterator[str]:
    """The gateway with the shipped sounds model (space clap) over the sounds sample."""
    model = ModelSettings(name=BUILTIN_SOUNDS_MODEL, device="cpu")
    async with gateway(stack, "clap", model, index_sounds_sample) as served:
        yield served.url


@asynccontextmanager
async def opened(browser: Browser, url: str) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    p = await context.new_page()
    problems: list[str] = []
    p.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # The browser logs every 4xx answer as a console error; the page shows those itself (tested below).
    p.on("console", lambda msg: problems.append(msg.text)
         if msg.type == "error" and "status of 4" not in msg.text else None)
    await p.goto(url)
    yield p
    await context.close()
    assert problems == []  # no script errors and no failed requests behind the scenes


@pytest.fixture
async def page(browser: Browser, page_url: str) -> AsyncIterator[Page]:
    async with opened(browser, page_url) as p:
        yield p


@pytest.fixture
async def sounds_page(browser: Browser, sounds_url: str) -> AsyncIterator[Page]:
    async with opened(browser, sounds_url) as p:
        yield p


def screenshot_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("XMODAL_SCREENSHOT_DIR")
    out = Path(chosen) if chosen else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out


def png(color: str, shape: str, seed: int = 77) -> bytes:
    buf = io.BytesIO()
    world.draw_image(random.Random(seed), color, shape).save(buf, "PNG")
    return buf.getvalue()


def upload(name: str, data: bytes, mime: str = "image/png") -> FilePayload:
    return {"name": name, "mimeType": mime, "buffer": data}


def wav(sound: sounds_world.Sound, seed: int = 77) -> bytes:
    """A clip of ``sound`` not in the sample (another seed), as a WAV file."""
    clip = sounds_world.sample(random.Random(seed), "val", sound).audio
    buf = io.BytesIO()
    sf.write(buf, clip, sounds_world.SAMPLING_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def url_params(page: Page) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(page.url).query))


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


# -- state in the URL -----------------------------------------------------------------------------------------


async def test_a_link_runs_its_search_at_once(page: Page, page_url: str) -> None:
    await page.goto(f"{page_url}/?q=a+photo+of+a+yellow+star&target=image")
    await after_search(page, 0)
    assert classes(await results(page))[:4] == [("yellow", "star")] * 4
    assert await page.input_value("#q") == "a photo of a yellow star"
    assert await page.is_checked("input[name=target][value=image]")
    assert url_params(page) == {"q": "a photo of a yellow star", "target": "image"}


async def test_a_link_sets_target_and_category(page: Page, page_url: str) -> None:
    await page.goto(f"{page_url}/?q=a+photo+of+a+red+square&target=text&category=square")
    await after_search(page, 0)
    found = await results(page)
    assert found[0]["asset_id"] == "text-red-square"
    assert {r["modality"] for r in found} == {"text"}
    assert {r["meta"]["category"] for r in found} == {"square"}
    assert await page.input_value("#category") == "square"


async def test_the_rerank_box_reranks_and_is_kept_in_the_link(page: Page, page_url: str) -> None:
    await page.goto(f"{page_url}/?q=a+photo+of+a+yellow+star&target=image")
    await after_search(page, 0)
    before = await searches(page)
    await page.check("#rerank")
    await after_search(page, before)
    status = await page.text_content("#status") or ""
    assert "re-ranked by biencoder:builtin:shapes-clip-large in " in status, status
    assert classes(await results(page))[:4] == [("yellow", "star")] * 4
    assert url_params(page) == {"q": "a photo of a yellow star", "target": "image", "rerank": "true"}
    await page.goto(f"{page_url}/?q=a+photo+of+a+red+circle&target=image&rerank=true")
    await after_search(page, 0)
    assert await page.is_checked("#rerank")
    assert "re-ranked by" in (await page.text_content("#status") or "")


async def test_the_match_select_searches_one_part_and_is_kept_in_the_link(page: Page, page_url: str) -> None:
    await page.goto(f"{page_url}/?q=a+photo+of+a+yellow+star&target=image")
    await after_search(page, 0)
    before = await searches(page)
    await page.select_option("#part", "caption")
    await after_search(page, before)
    status = await page.text_content("#status") or ""
    assert "0 results · caption" in status, status  # the sample's images have no captions
    assert await page.is_visible("#empty")
    assert url_params(page) == {"q": "a photo of a yellow star", "target": "image", "part": "caption"}
    await page.goto(f"{page_url}/?q=a+photo+of+a+yellow+star&target=image&part=content")
    await after_search(page, 0)
    assert await page.input_value("#part") == "content"
    assert classes(await results(page))[:4] == [("yellow", "star")] * 4


async def test_searches_are_written_to_the_url_and_back_returns_to_them(page: Page) -> None:
    before = await searches(page)
    await page.fill("#q", "a photo of a green circle")
    await page.press("#q", "Enter")
    await after_search(page, before)
    assert url_params(page) == {"q": "a photo of a green circle", "target": "image"}
    before = await searches(page)
    await page.check("input[name=target][value=text]")
    await after_search(page, before)
    assert url_params(page) == {"q": "a photo of a green circle", "target": "text"}
    before = await searches(page)
    await page.set_input_files("#file", files=[upload("triangle.png", png("green", "triangle"))])
    await after_search(page, before)
    assert url_params(page) == {"target": "text"}  # an upload is not in the URL

    before = await searches(page)
    await page.go_back()
    await after_search(page, before)
    assert url_params(page) == {"q": "a photo of a green circle", "target": "text"}
    assert await page.input_value("#q") == "a photo of a green circle"
    assert (await results(page))[0]["asset_id"] == "text-green-circle"
    assert await page.is_hidden("#active")
    before = await searches(page)
    await page.go_back()
    await after_search(page, before)
    assert await page.is_checked("input[name=target][value=image]")
    assert classes(await results(page))[:3] == [("green", "circle")] * 3
    before = await searches(page)
    await page.go_forward()
    await after_search(page, before)
    before = await searches(page)
    await page.go_forward()  # back to the upload: the page remembers its file for this tab's history
    await after_search(page, before)
    assert "triangle.png" in (await page.text_content("#active-label") or "")
    assert {r["modality"] for r in await results(page)} == {"text"}


async def test_a_query_no_space_answers_is_shown_as_an_error(page: Page) -> None:
    await page.check("input[name=target][value=audio]")  # no query yet: nothing is searched
    before = await searches(page)
    await page.set_input_files("#file", files=[upload("star.png", png("yellow", "star"))])
    await after_search(page, before)
    text = await page.text_content("#error") or ""
    assert "no_space" in text
    assert "HTTP 400" in text
    assert "clip (image, text)" in text  # the message lists the spaces there are
    assert await results(page) == []


# -- sounds (the sounds sample, in the clap space) ----------------------------------------------------------

SIREN = sounds_world.Siren("rising")
BEEPS = sounds_world.Beeps(3, "short", "high")


async def players_ready(page: Page, n: int) -> None:
    await page.wait_for_function(f"""() => {{
        const players = Array.from(document.querySelectorAll('#results .result audio')).slice(0, {n});
        return players.length === {n} && players.every(a => a.readyState >= 1 && a.duration > 0);
    }}""", timeout=WAIT_MS)


async def test_sound_search_plays_a_result(sounds_page: Page, tmp_path: Path) -> None:
    page, query = sounds_page, sounds_world.canonical_caption(SIREN)
    await page.check("input[name=target][value=audio]")
    before = await searches(page)
    await page.fill("#q", query)
    await page.press("#q", "Enter")
    await after_search(page, before)
    found = await results(page)
    assert {r["modality"] for r in found} == {"audio"}
    assert found[0]["meta"]["caption"] == query
    assert url_params(page) == {"q": query, "target": "audio"}
    status = await page.text_content("#status") or ""
    assert "space clap" in status
    assert f"model {BUILTIN_SOUNDS_MODEL}" in status
    card = page.locator("#results .result").first
    assert await card.locator(".caption").text_content() == query
    player = card.locator("audio")
    await players_ready(page, 1)
    box = await player.bounding_box()
    assert box is not None
    await player.click(position={"x": 20, "y": box["height"] / 2})  # the play button of Chromium's controls
    await page.wait_for_function("""() => {
        const a = document.querySelector('#results .result audio');
        return Number.isFinite(a.duration) && a.duration > 0 && a.currentTime > 0;
    }""", timeout=WAIT_MS)
    await players_ready(page, min(8, len(found)))
    out = screenshot_dir(tmp_path) / "search-page-sounds.png"
    await page.screenshot(path=str(out), full_page=False)
    assert out.stat().st_size > 10_000


async def test_a_dropped_clip_finds_similar_sounds(sounds_page: Page) -> None:
    page = sounds_page
    await page.check("input[name=target][value=audio]")
    before = await searches(page)
    # Browsers leave the type of some audio files empty or generic: the name makes it a sound.
    await page.set_input_files("#file", files=[upload("beeps.wav", wav(BEEPS), "application/octet-stream")])
    await after_search(page, before)
    assert await page.is_hidden("#error")
    found = await results(page)
    assert {r["modality"] for r in found} == {"audio"}
    assert found[0]["meta"]["category"] == "beeps"
    assert "beeps.wav" in (await page.text_content("#active-label") or "")
    assert await page.is_visible("#drop-audio")
    assert url_params(page) == {"target": "audio"}


async def test_a_sound_link_runs_at_once(browser: Browser, sounds_url: str) -> None:
    query = sounds_world.canonical_caption(sounds_world.Tone("low", "sine"))  # "a low hum"
    async with opened(browser, f"{sounds_url}/?q={query.replace(' ', '+')}&target=audio") as page:
        await after_search(page, 0)
        found = await results(page)
        assert {r["modality"] for r in found} == {"audio"}
        assert found[0]["meta"]["category"] == "tone"
