"""The search page's videos in a real browser (Debian's chromium, driven by playwright) against the real
gateway, the shipped shapes model and the real Weaviate holding the clips sample: a text search finds the
clip, a click on its poster plays it from the matched time, a segment's time code seeks to its own.

A screenshot of the page playing the matched moment (search-video.png) is saved to $XMODAL_SCREENSHOT_DIR
(or the test's tmp dir).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from services.config import ModelSettings
from services.localstack import LocalStack
from tests.e2e.test_search_page import (
    WAIT_MS,
    after_search,
    gateway,
    opened,
    results,
    screenshot_dir,
    searches,
)
from tests.harness.catalogue import index_clips_sample

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def clips_url(stack: LocalStack) -> AsyncIterator[str]:
    async with gateway(stack, "clip", ModelSettings(device="cpu"), index_clips_sample, all_vectors=True) as served:
        yield served.url


@pytest.fixture
async def page(browser: Browser, clips_url: str) -> AsyncIterator[Page]:
    async with opened(browser, clips_url) as p:
        yield p


async def current_time(page: Page) -> float:
    return float(await page.eval_on_selector("#results .result:first-child video", "v => v.currentTime"))


async def test_a_click_plays_the_clip_from_the_matched_time(page: Page, tmp_path: Path) -> None:
    assert await page.is_visible("#part")  # images: picture, caption or both
    await page.check("input[name=target][value=video]")
    assert not await page.is_visible("#part")  # videos have no captions: no such choice
    before = await searches(page)
    await page.fill("#q", "a photo of a blue circle")
    await page.press("#q", "Enter")
    await after_search(page, before)
    found = await results(page)
    assert found[0]["asset_id"] == "clip-circle-red-blue"
    assert {r["modality"] for r in found} == {"video"}
    first = "#results .result:first-child"
    assert (await page.text_content(f"{first} .timecode") or "").endswith("2.0 s")  # the change to blue
    await page.wait_for_function(f"""() => {{
        const img = document.querySelector('{first} .poster img');
        return img && img.complete && img.naturalWidth > 0 && img.dataset.frameAt === "2";
    }}""", timeout=WAIT_MS)  # the poster shows the matched frame (2.0 s), not the first keyframe (red)
    rgb = await page.eval_on_selector(f"{first} .poster img", """img => {
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data; let best = [0, 0, 0], most = -1;
        for (let i = 0; i < d.length; i += 4) {  // the most saturated pixel: the shape's colour
            const s = Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]);
            if (s > most) { most = s; best = [d[i], d[i + 1], d[i + 2]]; }
        }
        return best;
    }""")
    assert rgb[2] > rgb[0] and rgb[2] > rgb[1], f"the poster's circle is {rgb}, not blue"
    await page.click(f"{first} .poster")
    # the player replaces the poster and starts at the matched segment (2.0 s - 4.0 s)
    await page.wait_for_function(f"""() => {{
        const v = document.querySelector('{first} video');
        return v && v.readyState >= 2 && v.currentTime >= 2.0;
    }}""", timeout=WAIT_MS)
    assert 2.0 <= await current_time(page) < 4.1
    await page.eval_on_selector(f"{first} video", "v => v.pause()")
    out = screenshot_dir(tmp_path) / "search-video.png"
    await page.screenshot(path=str(out), full_page=False)
    assert out.stat().st_size > 10_000
    # the other segment's time code seeks the same player back to its start
    labels = await page.eval_on_selector_all(f"{first} .segment", "bs => bs.map(b => b.textContent)")
    assert labels[0].startswith("2.0 s") and labels[1].startswith("0.0 s")
    await page.click(f"{first} .segment:nth-child(2)")
    await page.wait_for_function(f"() => document.querySelector('{first} video').currentTime < 2.0",
                                 timeout=WAIT_MS)
    assert await current_time(page) < 2.0
