"""The checkpoint of a backfill: what it records, how it is saved, and when a rerun resumes, starts or refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.config import KafkaSettings
from services.errors import ConfigError
from services.publish import Published
from services.publish.checkpoint import (
    Checkpoint,
    CheckpointFile,
    Complete,
    Fresh,
    Resume,
    default_path,
    new_checkpoint,
    plan,
)
from services.publish.sources import Fingerprint

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:9092", topic="assets")
FP = Fingerprint(size=1234, mtime_ns=1_700_000_000_000_000_000, files=1)


def started(source: Path, total: int = 5) -> Checkpoint:
    return new_checkpoint(source, KAFKA, FP, total)


def test_advancing_counts_acked_events_and_keeps_the_highest_offset_per_partition(tmp_path: Path) -> None:
    c = started(tmp_path / "e.jsonl")
    assert (c.acked, c.state, c.offsets) == (0, "in_progress", {})
    c = c.advanced([Published("a", 0, 3), Published("b", 2, 9), Published("c", 0, 4)])
    assert (c.acked, c.state, c.offsets) == (3, "in_progress", {0: 4, 2: 9})
    c = c.advanced([Published("d", 2, 10), Published("e", 1, 0)])
    assert (c.acked, c.state, c.offsets) == (5, "done", {0: 4, 1: 0, 2: 10})
    with pytest.raises(ConfigError, match="more events than the 5 counted"):
        c.advanced([Published("f", 0, 5)])


def test_a_checkpoint_survives_a_save_and_a_load(tmp_path: Path) -> None:
    file = CheckpointFile(tmp_path / "state" / "publish" / "x.json")
    assert file.load() is None
    c = started(tmp_path / "e.jsonl").advanced([Published("a", 3, 17)])
    file.save(c)
    assert file.load() == c  # partition numbers come back as ints
    assert '"state": "in_progress"' in file.path.read_text()
    assert not list(file.path.parent.glob("*.tmp"))  # written atomically: the temporary file is gone
    file.path.write_text('{"version": 1, "acked": "lots"}')
    with pytest.raises(ConfigError, match=r"x.json is unreadable .*--restart"):
        file.load()


def test_the_default_path_is_one_file_per_source_cluster_and_topic(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    p = default_path(tmp_path / "publish", src, KAFKA)
    assert p.parent == tmp_path / "publish" and p.name.startswith("events.jsonl-") and p.suffix == ".json"
    assert p == default_path(tmp_path / "publish", src, KafkaSettings(bootstrap_servers="127.0.0.1:9092"))
    assert p != default_path(tmp_path / "publish", src, KafkaSettings(topic="other"))
    assert p != default_path(tmp_path / "publish", src, KafkaSettings(bootstrap_servers="prod:9092"))
    assert p != default_path(tmp_path / "publish", tmp_path / "sub" / "events.jsonl", KAFKA)


def decide(saved: Checkpoint | None, source: Path, *, fingerprint: Fingerprint = FP, restart: bool = False,
           kafka: KafkaSettings = KAFKA, tenant: str | None = None) -> object:
    return plan(saved, source=source, kafka=kafka, fingerprint=fingerprint, restart=restart,
                checkpoint_path=Path("/state/ck.json"), tenant=tenant)


def test_no_checkpoint_starts_fresh_and_an_unfinished_one_resumes(tmp_path: Path) -> None:
    src = tmp_path / "e.jsonl"
    assert decide(None, src) == Fresh(restarted=False)
    half = started(src, total=4).advanced([Published("a", 0, 0), Published("b", 0, 1)])
    assert decide(half, src) == Resume(half)
    assert decide(half, src, restart=True) == Fresh(restarted=True)
    done = half.advanced([Published("c", 0, 2), Published("d", 0, 3)])
    assert decide(done, src) == Complete(done)
    assert decide(done, src, restart=True) == Fresh(restarted=True)


def test_a_changed_source_is_not_resumed(tmp_path: Path) -> None:
    src = tmp_path / "e.jsonl"
    half = started(src, total=4).advanced([Published("a", 0, 0)])
    grown = FP.model_copy(update={"size": 2000})
    with pytest.raises(ConfigError, match=r"changed since checkpoint /state/ck.json .*size 1,234 -> 2,000 bytes.*"
                                          r"--restart"):
        decide(half, src, fingerprint=grown)
    touched = FP.model_copy(update={"mtime_ns": FP.mtime_ns + 1})
    with pytest.raises(ConfigError, match=r"modified 2023-11-14T22:13:20.000\+00:00 -> "):
        decide(half, src, fingerprint=touched)
    # a finished source that changed is refused too: it is not "complete" any more
    with pytest.raises(ConfigError, match="cannot resume"):
        decide(started(src, total=1).advanced([Published("a", 0, 0)]), src, fingerprint=grown)
    assert decide(half, src, fingerprint=grown, restart=True) == Fresh(restarted=True)


def test_a_checkpoint_of_another_source_or_topic_is_refused(tmp_path: Path) -> None:
    half = started(tmp_path / "e.jsonl", total=4).advanced([Published("a", 0, 0)])
    with pytest.raises(ConfigError, match=r"is of .*e.jsonl -> assets at 127.0.0.1:9092, not of .*f.jsonl"):
        decide(half, tmp_path / "f.jsonl")
    with pytest.raises(ConfigError, match=r"not of .* -> other at"):
        decide(half, tmp_path / "e.jsonl", kafka=KafkaSettings(topic="other"))


def test_a_checkpoint_for_another_tenant_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "e.jsonl"
    acme = new_checkpoint(src, KAFKA, FP, 4, tenant="acme").advanced([Published("a", 0, 0)])
    assert decide(acme, src, tenant="acme") == Resume(acme)
    with pytest.raises(ConfigError, match=r"for tenant 'acme', not 'globex'"):
        decide(acme, src, tenant="globex")
    with pytest.raises(ConfigError, match=r"for tenant 'acme', not None"):
        decide(acme, src)
    assert default_path(tmp_path, src, KAFKA, "acme") != default_path(tmp_path, src, KAFKA)


def test_times_are_utc() -> None:
    c = new_checkpoint(Path("/e.jsonl"), KAFKA, FP, 1)
    assert c.started_at.tzinfo is UTC and c.started_at <= datetime.now(UTC)
