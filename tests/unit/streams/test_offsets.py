"""The watch for offsets the consumer skipped (streams/offsets.py)."""

from __future__ import annotations

import logging

import pytest

from services.monitoring import metrics
from streams.offsets import OffsetWatch


def skipped_total(topic: str, partition: int) -> float:
    return metrics.SKIPPED_OFFSETS.labels(topic, str(partition))._value.get()


def test_consecutive_offsets_skip_nothing() -> None:
    watch = OffsetWatch()
    assert watch.taken([("t-ok", 0, 0), ("t-ok", 1, 0), ("t-ok", 0, 1)], generation=1) == 0
    assert watch.taken([("t-ok", 0, 2), ("t-ok", 1, 1)], generation=1) == 0
    assert skipped_total("t-ok", 0) == 0


def test_a_jump_is_counted_and_logged_with_the_offsets(caplog: pytest.LogCaptureFixture) -> None:
    watch = OffsetWatch()
    watch.taken([("t-jump", 2, 33), ("t-jump", 2, 34)], generation=1)
    with caplog.at_level(logging.WARNING, logger="xmodal.worker"):
        # 35..38 never came (what faust's pause_partitions did to records fetched before the pause)
        assert watch.taken([("t-jump", 2, 39), ("t-jump", 3, 7)], generation=1) == 4
    assert skipped_total("t-jump", 2) == 4
    assert "offsets 35..38 of t-jump/2 never reached the worker" in caplog.text


def test_records_seen_again_and_a_new_generation_are_not_jumps() -> None:
    watch = OffsetWatch()
    watch.taken([("t-again", 0, 10), ("t-again", 0, 11)], generation=1)
    assert watch.taken([("t-again", 0, 5), ("t-again", 0, 6)], generation=1) == 0  # a seek back: delivered again
    # after a rebalance the partition may resume where another worker committed
    assert watch.taken([("t-again", 0, 40)], generation=2) == 0
    assert skipped_total("t-again", 0) == 0
