"""`xmodal lag`'s table, from a snapshot (no Kafka)."""

from __future__ import annotations

from cli.lag import render
from services.monitoring.lag import LagSnapshot, PartitionLag


def test_table_shows_each_partition_the_total_and_the_time_to_drain() -> None:
    snap = LagSnapshot(topic="assets", group="xmodal", members=1, state="Stable",
                       partitions=[PartitionLag(0, end_offset=10, committed=4), PartitionLag(1, 5, None)])
    lines = render(snap, rate=2.0).splitlines()
    assert lines[0] == "topic assets  group xmodal  state Stable  members 1"
    assert lines[2].split() == ["0", "10", "4", "6"]
    assert lines[3].split() == ["1", "5", "-", "5"]
    assert lines[4].split() == ["total", "11"]
    assert lines[5] == "consume rate 2.0 events/s, time to drain 5.5s"
    assert render(snap, rate=0.0).endswith("time to drain n/a (not consuming)")
    assert "consume rate" not in render(snap, rate=None)
