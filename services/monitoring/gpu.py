"""GPU memory and utilisation gauges, from a stats function the embedding package provides.

Only services/embedding may import torch, so this module takes a callable returning samples (one per device
the model uses; none on the CPU) and turns them into gauges. Any object with the attributes of
:class:`GpuSample` will do, so the embedding package need not import this one.

>>> from dataclasses import dataclass
>>> @dataclass
... class Sample:
...     device: str = "cuda:0"
...     allocated_bytes: int = 2**30
...     reserved_bytes: int = 2 * 2**30
...     used_bytes: int = 3 * 2**30
...     total_bytes: int = 80 * 2**30
...     utilization: float | None = 0.5
>>> export_gpu([Sample()])
1
>>> metrics.GPU_MEMORY.labels("cuda:0", "reserved")._value.get() == 2 * 2**30
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from services.monitoring import metrics

log = logging.getLogger(__name__)


class GpuSample(Protocol):
    """One device's figures at one moment."""

    @property
    def device(self) -> str: ...  # e.g. "cuda:0"
    @property
    def allocated_bytes(self) -> int: ...  # held by live tensors (torch.cuda.memory_allocated)
    @property
    def reserved_bytes(self) -> int: ...  # held by torch's caching allocator (torch.cuda.memory_reserved)
    @property
    def used_bytes(self) -> int: ...  # used on the whole device, other processes included (mem_get_info)
    @property
    def total_bytes(self) -> int: ...
    @property
    def utilization(self) -> float | None: ...  # 0..1 (torch.cuda.utilization needs NVML; None without)


GpuStats = Callable[[], Sequence[GpuSample]]


def export_gpu(samples: Sequence[GpuSample]) -> int:
    """Set the GPU gauges from ``samples``; returns how many devices were exported."""
    for s in samples:
        for kind, value in (("allocated", s.allocated_bytes), ("reserved", s.reserved_bytes),
                            ("used", s.used_bytes), ("total", s.total_bytes)):
            metrics.GPU_MEMORY.labels(s.device, kind).set(value)
        if s.utilization is not None:
            metrics.GPU_UTILIZATION.labels(s.device).set(s.utilization)
    return len(samples)


def sample_and_export(stats: GpuStats) -> int:
    """Call ``stats`` and export; a failing stats call is logged, never fatal (gauges are best effort)."""
    try:
        samples = stats()
    except (RuntimeError, OSError, ValueError) as exc:  # CUDA/NVML errors surface as RuntimeError
        log.warning("reading GPU stats failed: %s", exc)
        return 0
    return export_gpu(samples)
