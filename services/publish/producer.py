"""An idempotent aiokafka producer that returns where each event landed (for read-your-writes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from schemas.asset_event import AssetEvent
from services.config import KafkaSettings
from services.errors import TransientError
from services.lifecycle import AsyncResource

#: The largest produce request (Kafka's default message.max.bytes is about the same): a bigger record is refused.
MAX_REQUEST_BYTES = 1_048_576


def encode(event: AssetEvent) -> tuple[bytes, bytes]:
    """The Kafka key and value of an event."""
    return event.asset_id.encode(), event.model_dump_json(exclude_none=True).encode()


def record_size(key: bytes, value: bytes) -> int:
    """The bytes a record takes in a produce request, as the producer counts them against MAX_REQUEST_BYTES."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []))


@dataclass(frozen=True)
class Published:
    asset_id: str
    partition: int
    offset: int


class EventPublisher(AsyncResource):
    """Key = asset_id, value = the event's JSON; acks=all with idempotence, so a retry never duplicates."""

    def __init__(self, settings: KafkaSettings, *, linger_ms: int = 5) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True,
            linger_ms=linger_ms, max_request_size=MAX_REQUEST_BYTES, request_timeout_ms=15_000,
        )

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise TransientError(
                f"cannot reach Kafka at {self.settings.bootstrap_servers} ({exc}); is it up? (make up)"
            ) from exc

    async def close(self) -> None:
        await self._producer.stop()

    async def publish(self, event: AssetEvent) -> Published:
        return (await self.publish_many([event]))[0]

    async def publish_raw(self, key: bytes | None, value: bytes) -> Published:
        """Send bytes as they are (tools and tests use it for events that are deliberately bad)."""
        return (await self.publish_many_raw([(key, value)]))[0]

    async def publish_many(self, events: Iterable[AssetEvent]) -> list[Published]:
        return await self.publish_many_raw(encode(ev) for ev in events)

    async def publish_many_raw(self, records: Iterable[tuple[bytes | None, bytes]]) -> list[Published]:
        """Send all, then wait for all acks: batching amortises the round trips."""
        pending = []
        try:
            for key, value in records:
                pending.append((key, await self._producer.send(self.settings.topic, key=key, value=value)))
            mds = await asyncio.gather(*(fut for _, fut in pending))
        except KafkaError as exc:
            raise TransientError(f"publishing to {self.settings.topic} failed: {exc}") from exc
        return [Published((key or b"").decode("utf-8", "replace"), md.partition, md.offset)
                for (key, _), md in zip(pending, mds, strict=True)]
