"""`xmodal publish` without Kafka: which events it loads, and which offsets --wait waits for."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.publish import load_events, targets_of
from services.errors import ConfigError
from services.publish import Published


def test_wait_targets_are_the_highest_offset_per_partition() -> None:
    published = [Published("a", 0, 5), Published("b", 1, 2), Published("c", 0, 9), Published("d", 0, 7)]
    assert targets_of(published) == {0: 9, 1: 2}
    assert targets_of([]) == {}


def test_the_sample_wins_over_a_source_and_a_missing_source_is_a_config_error(tmp_path: Path) -> None:
    events = load_events(tmp_path / "ignored", sample="shapes", per_class=1)
    assert len(events) == 48
    with pytest.raises(ConfigError, match="give a SOURCE"):
        load_events(None)
    with pytest.raises(ConfigError, match="does not exist"):
        load_events(tmp_path / "missing")


def test_folders_and_jsonl_files_load(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("a red circle")
    assert [e.asset_id for e in load_events(tmp_path / "notes")] == ["a.txt"]
    f = tmp_path / "events.jsonl"
    f.write_text('{"schema_version": 1, "asset_id": "x", "op": "delete", "event_time": "2026-11-27T10:00:00Z"}\n')
    assert [e.asset_id for e in load_events(f)] == ["x"]
