"""Where a backfill stands: a small JSON file, rewritten after every chunk Kafka acknowledged.

``acked`` counts the events of the source, from the first, that Kafka has acknowledged (acks=all, idempotent
producer). A rerun after a crash or Ctrl-C resumes at that event; the chunk that was in flight is sent again,
which is harmless: events are keyed by asset_id and the pipeline's writes are idempotent (an event applied twice
in order leaves the state it leaves once). A source whose files changed since (size or mtime) cannot be resumed:
the events already sent may no longer be its first ``acked``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.config import KafkaSettings
from services.errors import ConfigError
from services.publish.producer import Published
from services.publish.sources import Fingerprint


class Checkpoint(BaseModel):
    """The file's content (``state`` "done" once every event is acknowledged)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    source: str = Field(description="The source, as an absolute path.")
    bootstrap_servers: str
    topic: str
    tenant: str | None = Field(None, description="The tenant --tenant put every event in, if any.")
    fingerprint: Fingerprint
    total: int = Field(ge=1, description="Events in the source.")
    acked: int = Field(ge=0, description="Events of the source, from the first, acknowledged by Kafka.")
    state: Literal["in_progress", "done"] = "in_progress"
    offsets: dict[int, int] = Field(
        default_factory=dict, description="Highest acknowledged offset per partition (what --wait waits for).")
    started_at: datetime
    updated_at: datetime

    def advanced(self, published: Sequence[Published], *, now: datetime | None = None) -> Checkpoint:
        """This checkpoint after the next ``len(published)`` events were acknowledged.

        >>> t = datetime(2026, 12, 1, tzinfo=UTC)
        >>> c = Checkpoint(source="/e.jsonl", bootstrap_servers="k:9092", topic="assets", total=3, acked=0,
        ...                fingerprint=Fingerprint(size=1, mtime_ns=1, files=1), started_at=t, updated_at=t)
        >>> c = c.advanced([Published("a", 0, 7), Published("b", 1, 2)], now=t)
        >>> c.acked, c.state, c.offsets
        (2, 'in_progress', {0: 7, 1: 2})
        >>> c = c.advanced([Published("c", 0, 8)], now=t)
        >>> c.acked, c.state, c.offsets
        (3, 'done', {0: 8, 1: 2})
        """
        offsets = dict(self.offsets)
        for p in published:
            offsets[p.partition] = max(offsets.get(p.partition, -1), p.offset)
        acked = self.acked + len(published)
        if acked > self.total:
            raise ConfigError(f"{self.source} holds more events than the {self.total:,} counted: did it change?")
        return self.model_copy(update={"acked": acked, "offsets": offsets, "updated_at": now or datetime.now(UTC),
                                       "state": "done" if acked == self.total else "in_progress"})


def default_path(state_dir: Path, source: Path, kafka: KafkaSettings, tenant: str | None = None) -> Path:
    """One checkpoint per (source, Kafka cluster, topic, tenant): ``<state_dir>/<source name>-<hash>.json``.

    >>> default_path(Path("/state"), Path("/data/events.jsonl"), KafkaSettings())  # doctest: +ELLIPSIS
    PosixPath('/state/events.jsonl-....json')
    >>> a, b = (default_path(Path("/s"), Path("/d"), KafkaSettings(), tenant=t) for t in ("acme", "globex"))
    >>> a != b
    True
    """
    key = f"{source.resolve()}\n{kafka.bootstrap_servers}\n{kafka.topic}" + (f"\n{tenant}" if tenant else "")
    return state_dir / f"{source.resolve().name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


class CheckpointFile:
    """Reads and atomically rewrites one checkpoint (a crash mid-write leaves the previous one)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Checkpoint | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            return Checkpoint.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(f"checkpoint {self.path} is unreadable ({exc.errors()[0]['msg']}); "
                              "--restart publishes the source from its first event") from exc

    def save(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w") as fh:
            fh.write(checkpoint.model_dump_json(indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)


@dataclass(frozen=True)
class Fresh:
    """No checkpoint, or --restart over one: validate, then publish from the first event."""

    restarted: bool


@dataclass(frozen=True)
class Resume:
    """An unfinished checkpoint of the unchanged source: publish from its ``acked``-th event."""

    saved: Checkpoint


@dataclass(frozen=True)
class Complete:
    """A finished checkpoint of the unchanged source: nothing to send."""

    saved: Checkpoint


Plan = Fresh | Resume | Complete


def plan(saved: Checkpoint | None, *, source: Path, kafka: KafkaSettings, fingerprint: Fingerprint,
         restart: bool, checkpoint_path: Path, tenant: str | None = None) -> Plan:
    """Resume, start, or refuse (ConfigError) given the checkpoint found and the source as it is now."""
    if saved is None or restart:
        return Fresh(restarted=saved is not None)
    wanted = (str(source.resolve()), kafka.bootstrap_servers, kafka.topic)
    if (saved.source, saved.bootstrap_servers, saved.topic) != wanted:
        raise ConfigError(f"checkpoint {checkpoint_path} is of {saved.source} -> {saved.topic} at "
                          f"{saved.bootstrap_servers}, not of {wanted[0]} -> {wanted[2]} at {wanted[1]}; "
                          "give another --checkpoint, or --restart to overwrite it")
    if saved.tenant != tenant:
        raise ConfigError(f"checkpoint {checkpoint_path} is of {saved.source} for tenant {saved.tenant!r}, not "
                          f"{tenant!r}; give another --checkpoint, or --restart to overwrite it")
    changes = saved.fingerprint.changes(fingerprint)
    if changes:
        raise ConfigError(f"{source} changed since checkpoint {checkpoint_path} was written ({changes}): the "
                          f"{saved.acked:,} events already published may not be its first ones any more, so it "
                          "cannot resume; --restart publishes it from its first event")
    return Complete(saved) if saved.state == "done" else Resume(saved)


def new_checkpoint(source: Path, kafka: KafkaSettings, fingerprint: Fingerprint, total: int,
                   tenant: str | None = None) -> Checkpoint:
    now = datetime.now(UTC)
    return Checkpoint(source=str(source.resolve()), bootstrap_servers=kafka.bootstrap_servers, topic=kafka.topic,
                      tenant=tenant, fingerprint=fingerprint, total=total, acked=0, started_at=now, updated_at=now)
