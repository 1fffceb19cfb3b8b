"""Peak resident memory of a process and its children, sampled from /proc while a bench phase runs.

``VmRSS`` of the process and of every descendant is summed at each sample (a worker that forks decoders counts
them too; shared pages are counted once per process, so the sum is an upper bound); the kernel's own peak of
the main process (``VmHWM``) is read beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path

PROC = Path("/proc")


def status_kib(text: str, field: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status, in KiB.

    >>> status_kib("Name:\\tpython\\nVmHWM:\\t  2048 kB\\nVmRSS:\\t  1024 kB\\n", "VmRSS")
    1024
    >>> status_kib("Name:\\tzombie\\n", "VmRSS") is None
    True
    """
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def descendants(root: int, parents: Mapping[int, int]) -> set[int]:
    """``root`` and every process below it, given each pid's parent pid.

    >>> sorted(descendants(10, {11: 10, 12: 11, 13: 1, 14: 12}))
    [10, 11, 12, 14]
    """
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _parents(pids: Iterable[Path]) -> dict[int, int]:
    out = {}
    for d in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the comm field may hold spaces and parentheses: the ppid is the 2nd field after the last ')'
            out[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return out


def _read(pid: int, field: str) -> int | None:
    try:
        return status_kib((PROC / str(pid) / "status").read_text(), field)
    except OSError:
        return None


def tree_rss_kib(root: int) -> int:
    """Sum of VmRSS over ``root`` and its descendants, now (0 once it has exited)."""
    tree = descendants(root, _parents(p for p in PROC.iterdir() if p.name.isdigit()))
    return sum(_read(pid, "VmRSS") or 0 for pid in tree)


class RssSampler:
    """``async with RssSampler(pid) as s:`` samples every ``every_s``; then ``s.peak_mib`` and ``s.hwm_mib``."""

    def __init__(self, pid: int, every_s: float = 0.25) -> None:
        self.pid = pid
        self.every_s = every_s
        self.peak_kib = 0
        self.hwm_kib = 0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid))
        self.hwm_kib = max(self.hwm_kib, _read(self.pid, "VmHWM") or 0)
        self.samples += 1

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.every_s)

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.sample()  # the last word: VmHWM covers any peak between two samples of the main process

    @property
    def peak_mib(self) -> float:
        return round(self.peak_kib / 1024, 1)

    @property
    def hwm_mib(self) -> float:
        return round(self.hwm_kib / 1024, 1)

    def summary(self) -> dict[str, float | int]:
        return {"peak_rss_mib": self.peak_mib, "vm_hwm_mib": self.hwm_mib, "samples": self.samples}
