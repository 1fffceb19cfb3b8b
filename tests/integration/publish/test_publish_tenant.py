"""`xmodal publish --tenant` on the real Kafka: every event of a folder lands in the topic in that tenant."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from cli.invoke import XMODAL, with_root
from tests.harness.lanes import Lane, topic_records

pytestmark = pytest.mark.integration


async def test_a_folder_published_with_a_tenant_lands_in_that_tenant(lane: Lane, tmp_path: Path) -> None:
    folder = tmp_path / "catalogue"
    folder.mkdir()
    for color in ("red", "blue"):
        Image.new("RGB", (16, 16), color).save(folder / f"{color}.png")
    (folder / "about.txt").write_text("two squares")
    proc = await asyncio.create_subprocess_exec(
        *XMODAL, "publish", str(folder), "--tenant", "acme", "--checkpoint", str(tmp_path / "ck.json"),
        env=with_root(lane.env()), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode == 0, out.decode()
    events = [json.loads(r.value) for r in await topic_records(lane)]
    assert sorted((e["asset_id"], e["tenant"]) for e in events) == [
        ("about.txt", "acme"), ("blue.png", "acme"), ("red.png", "acme")]
    saved = json.loads((tmp_path / "ck.json").read_text())
    assert (saved["tenant"], saved["state"]) == ("acme", "done")
