"""Read-your-writes through the real app and the real Kafka: POST /v1/assets says where the event landed,
and a search with consistent_with waits until the worker group's committed offset is past it.

No worker runs here (the pipeline is tested elsewhere): the test commits the group's offset itself, the
way a worker does after the write is stored.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.config import KafkaSettings

pytestmark = pytest.mark.integration

EVENT = {"schema_version": 1, "asset_id": "rw-1", "op": "upsert", "modality": "text",
         "text": "a photo of a red circle", "metadata": {"color": "red"}, "event_time": "2026-11-27T12:00:00Z"}


async def commit(kafka: KafkaSettings, partition: int, offset: int) -> None:
    """Commit ``offset`` for the worker group, as a worker does once everything before it is stored."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=kafka.group_id,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(kafka.topic, partition)
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def test_publish_then_search_consistently(gateway: Any) -> None:
    client = gateway.client
    kafka: KafkaSettings = gateway.indexed.settings.kafka
    resp = await client.post("/v1/assets", json=EVENT)
    where = await resp.json()
    assert resp.status == 202, where
    assert where["asset_id"] == "rw-1"
    assert where["partition"] in (0, 1)
    assert where["offset"] >= 0
    body = {"text": "a red circle", "limit": 3, "consistent_with": [where], "consistency_timeout_s": 0.3}

    stale = await (await client.post("/v1/search", json=body)).json()
    assert stale["consistency"]["satisfied"] is False  # nothing committed yet: waited, then answered
    assert stale["consistency"]["waited_ms"] >= 300
    assert "committed" in stale["consistency"]["detail"]
    assert len(stale["results"]) == 3

    await commit(kafka, where["partition"], where["offset"] + 1)
    fresh = await (await client.post("/v1/search", json={**body, "consistency_timeout_s": 30})).json()
    assert fresh["consistency"]["satisfied"] is True
    assert "detail" not in fresh["consistency"]


async def test_publish_validates_the_event(gateway: Any) -> None:
    resp = await gateway.client.post("/v1/assets", json={**EVENT, "metadata": {"bad key": 1}})
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["details"][0]["path"] == "body.metadata"
    resp = await gateway.client.post("/v1/assets", json={**EVENT, "schema_version": "1"})
    assert resp.status == 400  # strict JSON: the contract says an integer


async def test_search_without_consistent_with_has_no_consistency(gateway: Any) -> None:
    result = await (await gateway.client.post("/v1/search", json={"text": "a red circle"})).json()
    assert "consistency" not in result
