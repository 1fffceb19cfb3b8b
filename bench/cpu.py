"""CPU time per process over a bench phase: where the cores of a shared machine go, per event.

Throughput on a 2-core machine where Kafka, Weaviate and the worker share the cores is set by their CPU
seconds per event added together, more than by any one of them. ``CpuWindow`` reads each process's user +
system time (/proc/<pid>/stat, with its descendants: a worker's decoder children, Weaviate's none) at the
start and the end of a phase; ``per_1k`` turns the differences into CPU milliseconds per 1,000 events. These
figures move much less than wall-clock rates when other load shares the machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.rss import PROC, _parents, descendants
from services.localstack import LocalStack
from services.localstack.process import read_pid

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat: str) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds (fields 14 and 15; the comm may hold spaces).

    >>> round(cpu_seconds("42 (a b) S 1 1 1 0 -1 0 0 0 0 0 150 50 0 0 20 0 1 0 1 1 1") * _TICK / 100, 2)
    2.0
    """
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and every live process below it (0 for one that is gone)."""
    total = 0.0
    for pid in descendants(root, _parents(PROC.glob("[0-9]*"))):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += cpu_seconds((PROC / str(pid) / "stat").read_text())
    return total


def stack_processes(stack: LocalStack) -> dict[str, int]:
    """The local stack's Kafka and Weaviate processes by node name (``kafka-1``, ``weaviate-1``, ...)."""
    nodes = [(n.name, n.pid_file) for n in stack.kafka_nodes] + [(n.name, n.pid_file) for n in stack.weaviate_nodes]
    return {name: pid for name, pid_file in nodes if (pid := read_pid(pid_file)) is not None}


@dataclass
class CpuWindow:
    """CPU seconds each named process tree used between ``start()`` and ``stop()``."""

    pids: Mapping[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def start(self) -> CpuWindow:
        self._start = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {name: round(tree_cpu_seconds(pid) - self._start[name], 3) for name, pid in self.pids.items()}
        return self.used

    def per_1k(self, events: int) -> dict[str, float]:
        """CPU milliseconds per 1,000 events, per process and in all.

        >>> w = CpuWindow({"a": 1, "b": 2}); w.used = {"a": 1.5, "b": 0.5}
        >>> w.per_1k(2000)
        {'a': 750.0, 'b': 250.0, 'all': 1000.0}
        """
        out = {name: round(1e6 * s / max(events, 1), 1) for name, s in self.used.items()}
        return out | {"all": round(sum(out.values()), 1)}
