"""What `xmodal publish` reads: JSONL files and folders of images and texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from services.errors import ConfigError
from services.publish.sources import INLINE_LIMIT, from_folder, from_jsonl


def test_jsonl_reports_the_bad_line(tmp_path: Path) -> None:
    good = {"schema_version": 1, "asset_id": "a", "op": "delete", "event_time": "2026-11-27T10:00:00Z"}
    f = tmp_path / "events.jsonl"
    f.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "op": "merge"}) + "\n")
    events = from_jsonl(f)
    assert next(events).asset_id == "a"
    with pytest.raises(ConfigError, match=r"events.jsonl:3"):
        next(events)


def test_folder_inlines_small_images_and_links_large_ones(tmp_path: Path) -> None:
    (tmp_path / "shoes").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "shoes" / "red.png")
    (tmp_path / "shoes" / "red.png.json").write_text('{"category": "shoes", "price": 9.5}')
    (tmp_path / "about.txt").write_text("red running shoes")
    big = tmp_path / "big.bmp"
    Image.effect_noise((600, 600), 50).convert("RGB").save(big)
    assert big.stat().st_size > INLINE_LIMIT
    (tmp_path / "notes.bin").write_bytes(b"ignored")
    events = {e.asset_id: e for e in from_folder(tmp_path)}
    assert set(events) == {"about.txt", "big.bmp", "shoes/red.png"}
    assert events["shoes/red.png"].data is not None
    assert events["shoes/red.png"].metadata == {"category": "shoes", "price": 9.5}
    assert events["big.bmp"].uri == big.resolve().as_uri()
    assert events["about.txt"].text == "red running shoes"

