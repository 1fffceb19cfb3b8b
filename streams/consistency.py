"""`xmodal publish --wait`: block until the worker has stored what was just published."""

from __future__ import annotations

from collections.abc import Sequence

from services.config import KafkaSettings
from services.monitoring.lag import LagReader
from services.publish import Published


def targets_of(published: Sequence[Published]) -> dict[int, int]:
    """The highest offset per partition: committed past it means everything before is stored too."""
    out: dict[int, int] = {}
    for p in published:
        out[p.partition] = max(out.get(p.partition, -1), p.offset)
    return out


async def wait_for_offsets(published: Sequence[Published], kafka: KafkaSettings, *, timeout_s: float) -> int:
    async with LagReader(kafka) as reader:
        ok, waited = await reader.wait_committed(targets_of(published), timeout_s=timeout_s)
    if ok:
        print(f"stored: all {len(published)} events are searchable (waited {waited:.2f}s)")
        return 0
    print(f"not yet stored after {waited:.1f}s: is a worker running? (xmodal worker; xmodal lag)")
    return 1
