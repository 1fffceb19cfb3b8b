"""The chunked send loop, with a fake sender (no Kafka in unit tests): one chunk held at a time, paced before
it is sent, reported after it is acknowledged."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from schemas.asset_event import AssetEvent
from services.publish import Published
from services.publish.backfill import send_in_chunks


def events(n: int, pulled: list[int]) -> Iterator[AssetEvent]:
    for i in range(n):
        pulled.append(i)
        yield AssetEvent.model_validate({"schema_version": 1, "asset_id": f"a{i}", "modality": "text", "text": "x",
                                         "event_time": "2026-11-27T10:00:00Z"})


class FakeSender:
    def __init__(self, log: list[str], pulled: list[int]) -> None:
        self.log, self.pulled, self.offset = log, pulled, 0

    async def publish_many(self, events: Iterable[AssetEvent]) -> list[Published]:
        chunk = list(events)
        self.log.append(f"send {len(chunk)} (pulled {len(self.pulled)})")
        out = []
        for e in chunk:
            out.append(Published(e.asset_id, self.offset % 2, self.offset))
            self.offset += 1
        return out


class Recorder:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def reserve(self, n: int) -> float:
        self.log.append(f"pace {n}")
        return 0.0


async def test_chunks_are_paced_sent_and_reported_in_order_holding_one_chunk_at_a_time() -> None:
    log: list[str] = []
    pulled: list[int] = []
    acked: list[str] = []

    def on_acked(evs: Sequence[AssetEvent], pubs: Sequence[Published]) -> None:
        assert [e.asset_id for e in evs] == [p.asset_id for p in pubs]
        acked.append(",".join(p.asset_id for p in pubs))
        log.append("acked")

    tally = await send_in_chunks(FakeSender(log, pulled), events(7, pulled), pacer=Recorder(log), chunk=3,
                                 on_acked=on_acked)
    assert log == ["pace 3", "send 3 (pulled 3)", "acked", "pace 3", "send 3 (pulled 6)", "acked",
                   "pace 1", "send 1 (pulled 7)", "acked"]
    assert acked == ["a0,a1,a2", "a3,a4,a5", "a6"]
    assert tally.events == 7 and tally.kinds == {"upsert text": 7}
    assert tally.partitions == {0: 4, 1: 3} and tally.targets == {0: 6, 1: 5}


async def test_nothing_to_send_sends_nothing() -> None:
    log: list[str] = []
    tally = await send_in_chunks(FakeSender(log, []), [], pacer=Recorder(log), chunk=3,
                                 on_acked=lambda evs, pubs: None)
    assert log == [] and tally.events == 0
