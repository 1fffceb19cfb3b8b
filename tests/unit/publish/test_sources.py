"""What `xmodal publish` reads: JSONL files and folders, streamed, validated in a first pass that keeps nothing."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from services.errors import ConfigError
from services.publish.producer import MAX_REQUEST_BYTES
from services.publish.sources import INLINE_LIMIT, FolderSource, JsonlSource, from_folder, from_jsonl, open_source

GOOD = {"schema_version": 1, "asset_id": "a", "op": "delete", "event_time": "2026-11-27T10:00:00Z"}


def jsonl(path: Path, *records: dict[str, object] | str) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_jsonl_reports_the_bad_line(tmp_path: Path) -> None:
    f = jsonl(tmp_path / "events.jsonl", GOOD, "", {**GOOD, "op": "merge"})
    events = from_jsonl(f)
    assert next(events).asset_id == "a"  # a stream: the first event comes before the bad line is read
    with pytest.raises(ConfigError, match=r"events.jsonl:3"):
        next(events)


def test_validation_counts_events_and_stops_at_a_bad_line_at_the_end(tmp_path: Path) -> None:
    good = [{**GOOD, "asset_id": f"a{i}"} for i in range(50)]
    f = jsonl(tmp_path / "events.jsonl", *good, "", "   ")
    seen: list[int] = []
    assert JsonlSource(f).validate(seen.append) == 50  # blank lines are not events
    assert sum(seen) == 50
    jsonl(f, *good, "{not json")
    with pytest.raises(ConfigError, match=r"events.jsonl:51: not a valid asset event"):
        JsonlSource(f).validate()


def test_validation_refuses_an_event_too_large_for_kafka(tmp_path: Path) -> None:
    big = {"schema_version": 1, "asset_id": "big", "modality": "image", "event_time": "2026-11-27T10:00:00Z",
           "data": base64.b64encode(os.urandom(MAX_REQUEST_BYTES)).decode()}
    f = jsonl(tmp_path / "events.jsonl", GOOD, big)
    with pytest.raises(ConfigError, match=r"events.jsonl:2: event 'big' is .* bytes as a Kafka record"):
        JsonlSource(f).validate()


def test_events_from_a_start_skip_the_earlier_ones_without_parsing_them(tmp_path: Path) -> None:
    f = jsonl(tmp_path / "events.jsonl", "{not parsed when skipped", "", {**GOOD, "asset_id": "b"},
              {**GOOD, "asset_id": "c"})
    assert [e.asset_id for e in JsonlSource(f).events(1)] == ["b", "c"]
    assert [e.asset_id for e in JsonlSource(f).events(2)] == ["c"]
    assert list(JsonlSource(f).events(3)) == []


def test_a_jsonl_fingerprint_is_its_size_and_mtime(tmp_path: Path) -> None:
    f = jsonl(tmp_path / "events.jsonl", GOOD)
    before = JsonlSource(f).fingerprint()
    assert before == JsonlSource(f).fingerprint() and before.files == 1
    jsonl(f, GOOD, GOOD)
    os.utime(f, ns=(before.mtime_ns, before.mtime_ns))
    assert before.changes(JsonlSource(f).fingerprint()).startswith("size ")
    jsonl(f, GOOD)
    os.utime(f, ns=(before.mtime_ns + 10**9, before.mtime_ns + 10**9))
    assert before.changes(JsonlSource(f).fingerprint()).startswith("modified ")


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
    assert FolderSource(tmp_path).validate() == 3
    assert [e.asset_id for e in FolderSource(tmp_path).events(1)] == ["big.bmp", "shoes/red.png"]


def test_a_folder_fingerprint_sees_edits_of_sidecars_and_renames(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a red circle")
    (tmp_path / "a.txt.json").write_text('{"color": "red"}')
    src = FolderSource(tmp_path)
    first = src.fingerprint()
    assert first.files == 2 and first == src.fingerprint()
    (tmp_path / "a.txt.json").write_text('{"color": "blue"}')  # same size: the mtime or listing tells
    second = src.fingerprint()
    assert first.changes(second)
    st = (tmp_path / "a.txt").stat()
    (tmp_path / "a.txt").rename(tmp_path / "b.txt")
    os.utime(tmp_path / "b.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert second.changes(src.fingerprint())


def test_a_tenant_is_set_on_every_event_and_a_different_one_refused(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), "red").save(tmp_path / "red.png")
    assert [e.tenant for e in FolderSource(tmp_path, tenant="acme").events()] == ["acme"]
    assert [e.tenant for e in FolderSource(tmp_path).events()] == [None]
    f = jsonl(tmp_path / "e.jsonl", GOOD, {**GOOD, "asset_id": "b", "tenant": "acme"},
              {**GOOD, "asset_id": "c", "tenant": "globex"})
    events = JsonlSource(f, tenant="acme").events()
    assert [next(events).tenant, next(events).tenant] == ["acme", "acme"]
    with pytest.raises(ConfigError, match=r"e.jsonl:3: the event is for tenant 'globex', but --tenant says 'acme'"):
        next(events)
    with pytest.raises(ConfigError, match=r"e.jsonl:3"):
        JsonlSource(f, tenant="acme").validate()


def test_folder_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a red circle")
    (tmp_path / "a.txt.json").write_text("{broken")
    with pytest.raises(ConfigError, match=r"a.txt.json: not valid JSON"):
        FolderSource(tmp_path).validate()
    (tmp_path / "a.txt.json").write_text('{"nested": {"no": 1}}')
    with pytest.raises(ConfigError, match=r"a.txt: not a valid asset event"):
        FolderSource(tmp_path).validate()


def test_open_source_tells_files_from_folders(tmp_path: Path) -> None:
    assert isinstance(open_source(tmp_path), FolderSource)
    assert isinstance(open_source(jsonl(tmp_path / "e.jsonl", GOOD)), JsonlSource)
    with pytest.raises(ConfigError, match="does not exist"):
        open_source(tmp_path / "missing")
