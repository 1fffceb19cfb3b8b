"""`xmodal publish` without Kafka: what it loads, what it decides from a checkpoint before connecting, and which
offsets --wait waits for. The broker named here does not exist: reaching for it would fail these tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from cli.publish import checkpoint_file, publish_source, sample_events, targets_of
from services.config import KafkaSettings
from services.errors import ConfigError
from services.publish import Published
from services.publish.checkpoint import CheckpointFile, new_checkpoint
from services.publish.sources import JsonlSource

NOWHERE = KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="assets")
EVENT = {"schema_version": 1, "asset_id": "x", "op": "delete", "event_time": "2026-11-27T10:00:00Z"}


def jsonl(path: Path, n: int, tail: str = "") -> Path:
    path.write_text("".join(json.dumps({**EVENT, "asset_id": f"a{i}"}) + "\n" for i in range(n)) + tail)
    return path


def test_wait_targets_are_the_highest_offset_per_partition() -> None:
    published = [Published("a", 0, 5), Published("b", 1, 2), Published("c", 0, 9), Published("d", 0, 7)]
    assert targets_of(published) == {0: 9, 1: 2}
    assert targets_of([]) == {}


def test_sample_sets_load_whole() -> None:
    assert len(sample_events("shapes", per_class=1)) == 48


def test_a_bad_last_line_stops_before_anything_is_sent_or_checkpointed(tmp_path: Path) -> None:
    f = jsonl(tmp_path / "events.jsonl", 300, tail='{"schema_version": 1, "asset_id": ""}\n')
    ck = tmp_path / "ck.json"
    with pytest.raises(ConfigError, match=r"events.jsonl:301: not a valid asset event"):
        publish_source(f, NOWHERE, checkpoint=ck)
    assert not ck.exists()


def test_a_finished_source_is_complete_and_exits_0_without_kafka(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    f = jsonl(tmp_path / "events.jsonl", 3)
    file = CheckpointFile(tmp_path / "ck.json")
    done = new_checkpoint(f, NOWHERE, JsonlSource(f).fingerprint(), 3).advanced(
        [Published("a0", 0, 0), Published("a1", 1, 0), Published("a2", 0, 1)])
    file.save(done)
    assert publish_source(f, NOWHERE, checkpoint=file.path) == 0
    out = capsys.readouterr().out
    assert "is complete: all 3 events were acknowledged by assets" in out and "--restart" in out


def test_a_changed_source_refuses_to_resume(tmp_path: Path) -> None:
    f = jsonl(tmp_path / "events.jsonl", 3)
    file = CheckpointFile(tmp_path / "ck.json")
    file.save(new_checkpoint(f, NOWHERE, JsonlSource(f).fingerprint(), 3).advanced([Published("a0", 0, 0)]))
    jsonl(f, 4)
    with pytest.raises(ConfigError, match=r"changed since checkpoint .*ck.json was written \(size .*cannot resume"):
        publish_source(f, NOWHERE, checkpoint=file.path)


def test_the_default_checkpoint_lives_beside_the_user_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_STATE_DIR", str(tmp_path / "state" / "stack"))
    f = tmp_path / "events.jsonl"
    assert checkpoint_file(f, NOWHERE, None).path.parent == tmp_path / "state" / "publish"
    assert checkpoint_file(f, NOWHERE, tmp_path / "mine.json").path == tmp_path / "mine.json"


def test_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import build_parser

    args = build_parser().parse_args(["publish", "big.jsonl", "--rate", "250", "--checkpoint", "ck.json",
                                      "--restart"])
    assert (args.rate, args.checkpoint, args.restart) == (250.0, Path("ck.json"), True)
    defaults = build_parser().parse_args(["publish", "big.jsonl"])
    assert (defaults.rate, defaults.checkpoint, defaults.restart) == (0.0, None, False)
    assert main(["publish", str(jsonl(tmp_path / "e.jsonl", 1)), "--rate", "-5"]) == 2
    assert "--rate is events per second" in capsys.readouterr().err
    assert main(["publish", "--sample", "shapes", "--restart"]) == 2
    assert "a --sample set is published whole" in capsys.readouterr().err
    assert main(["publish", "--sample", "shapes", "--tenant", "acme corp"]) == 2
    assert "a tenant name is 1-64 letters, digits" in capsys.readouterr().err
