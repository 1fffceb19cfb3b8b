"""What the pipeline consumes and what it decides, independent of any Kafka client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from schemas.asset_event import AssetEvent
from schemas.dead_letter import DeadLetter


@dataclass(frozen=True)
class Record:
    """One Kafka record as consumed."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Parsed:
    """A record whose value is a valid event."""

    record: Record
    event: AssetEvent

    @property
    def order(self) -> tuple[float, int]:
        # Later event_time wins; within one event_time the later offset (Kafka order) wins.
        return (self.event.event_time.timestamp(), self.record.offset)


@dataclass
class BatchReport:
    """What happened to one micro-batch (for logs, metrics and tests)."""

    stored: int = 0
    deleted: int = 0
    metadata_only: int = 0
    stale: int = 0
    superseded: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    embedded: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str, n: int = 1) -> None:
        setattr(self, outcome, getattr(self, outcome) + n)


class DeadLetterSink(Protocol):
    """Produces a dead letter and returns only once the broker has confirmed it."""

    async def send(self, key: bytes | None, letter: DeadLetter) -> None: ...
