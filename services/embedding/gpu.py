"""GPU memory and utilisation of the device the model runs on (empty on the CPU), for the monitoring gauges."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GpuSample:
    device: str
    allocated_bytes: int
    reserved_bytes: int
    used_bytes: int
    total_bytes: int
    utilization: float | None


def gpu_stats(device: str) -> list[GpuSample]:
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return []
    dev = torch.device(device)
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    try:
        utilization: float | None = torch.cuda.utilization(index) / 100
    except (ModuleNotFoundError, RuntimeError):  # needs NVML (nvidia-ml-py)
        utilization = None
    return [GpuSample(f"cuda:{index}", torch.cuda.memory_allocated(index), torch.cuda.memory_reserved(index),
                      total - free, total, utilization)]
