"""Shared pieces of the benchmarks: events, rate-controlled publishing, histogram maths."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from schemas.asset_event import AssetEvent
from services.embedding.shapes.world import canonical_caption, generate
from services.monitoring.lag import LagReader
from services.publish import EventPublisher
from tests.harness.lanes import Lane


def sample_events(n: int, *, seed: int) -> list[AssetEvent]:
    """Half images (64x64 shapes, inline PNG), half texts, over n/2 assets (so some are updates)."""
    rng = random.Random(seed)
    images = generate(n // 2 + 1, seed=seed, split="val")
    out = []
    for i in range(n):
        aid = f"a{rng.randrange(max(n // 2, 1))}"
        s = images[i // 2]
        common = {"schema_version": 1, "asset_id": aid, "op": "upsert", "event_time": datetime.now(UTC),
                  "metadata": {"color": s.color, "shape": s.shape, "i": i}}
        if i % 2 == 0:
            buf = io.BytesIO()
            s.image.save(buf, format="PNG")
            out.append(AssetEvent.model_validate({**common, "asset_id": "img-" + aid, "modality": "image",
                                                  "data": base64.b64encode(buf.getvalue()).decode()}))
        else:
            out.append(AssetEvent.model_validate({**common, "asset_id": "txt-" + aid, "modality": "text",
                                                  "text": canonical_caption(s.color, s.shape) + f" #{i}"}))
    return out


def audio_events(n: int, *, seed: int = 3) -> list[AssetEvent]:
    """``n`` clips of the sounds world (1-2 s, 16-bit WAV inline), every one a new asset."""
    import soundfile as sf  # type: ignore[import-untyped]

    from services.embedding.sounds import world

    out = []
    for i, s in enumerate(world.generate(n, seed=seed, split="val")):
        buf = io.BytesIO()
        sf.write(buf, s.audio, world.SAMPLING_RATE, format="WAV", subtype="PCM_16")
        out.append(AssetEvent.model_validate({
            "schema_version": 1, "asset_id": f"snd-{i}", "op": "upsert", "modality": "audio",
            "data": base64.b64encode(buf.getvalue()).decode(), "event_time": datetime.now(UTC),
            "metadata": {"caption": s.label, "i": i}}))
    return out


def video_events(n: int) -> list[AssetEvent]:
    """``n`` videos: the clips sample's files (services.video_samples) in turn, every one a new asset."""
    from services.video_samples import CLIPS, clip_bytes

    files = [base64.b64encode(clip_bytes(c)).decode() for c in CLIPS]
    return [AssetEvent.model_validate({
        "schema_version": 1, "asset_id": f"vid-{i}", "op": "upsert", "modality": "video",
        "data": files[i % len(files)], "event_time": datetime.now(UTC), "metadata": {"i": i}}) for i in range(n)]


def video_segments(events: list[AssetEvent]) -> int:
    """Segments the worker cuts ``events``' videos into with the default settings (each distinct file decoded
    once: the same rule, so the same count as the worker's)."""
    from services.fetch.video import VideoLimits, decode_video

    counts: dict[str, int] = {}
    for ev in events:
        if ev.data is not None and ev.data not in counts:
            counts[ev.data] = len(decode_video(base64.b64decode(ev.data), limits=VideoLimits()).segments)
    return sum(counts[ev.data] for ev in events if ev.data is not None)


@dataclass
class Paced:
    """What one paced publish saw: each event's publish -> committed time (with a lane), and how well the
    schedule was kept (a starved generator offers less than the nominal rate: the achieved rate says so)."""

    committed_ms: list[float] = field(default_factory=list)
    send_seconds: float = 0.0
    send_lag_ms: list[float] = field(default_factory=list)

    def offered_per_s(self, n: int) -> float:
        return round(n / self.send_seconds, 1) if self.send_seconds > 0 else float("nan")


async def publish_paced(
    pub: EventPublisher, events: list[AssetEvent], rate: float, *, lane: Lane | None = None
) -> Paced:
    """Publish at ``rate`` events/s, open loop: event i is sent at ``start + i / rate`` without waiting for the
    broker's ack of the previous ones (a slow ack must not lower the offered rate). With ``lane``, also time
    each event from its send to the worker's commit past its offset."""
    sent: list[tuple[int, int, float]] = []
    out = Paced()
    stop = asyncio.Event()

    async def watch() -> None:
        assert lane is not None
        async with LagReader(lane.kafka) as reader:
            pending = 0
            while not stop.is_set() or pending < len(sent):
                committed = await reader.committed()
                now = time.perf_counter()
                while pending < len(sent) and committed.get(sent[pending][0], -1) > sent[pending][1]:
                    out.committed_ms.append((now - sent[pending][2]) * 1000)
                    pending += 1
                # later events on other partitions may be done earlier: settle them in order is enough here
                await asyncio.sleep(0.01)  # 100 polls/s: cheap next to the work measured; adds <= 10 ms

    async def one(ev: AssetEvent) -> None:
        t = time.perf_counter()
        p = await pub.publish(ev)
        sent.append((p.partition, p.offset, t))  # in ack order: close to send order on one producer

    watcher = asyncio.create_task(watch()) if lane else None
    tasks: list[asyncio.Task[None]] = []
    t0 = time.perf_counter()
    for i, ev in enumerate(events):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        out.send_lag_ms.append(max(0.0, -delay) * 1000)
        tasks.append(asyncio.create_task(one(ev)))
    out.send_seconds = time.perf_counter() - t0 + 1 / rate  # n sends span (n - 1) / rate, n / rate offered
    await asyncio.gather(*tasks)
    stop.set()
    if watcher:
        await asyncio.wait_for(watcher, timeout=120)
    return out


async def publish_at_rate(
    pub: EventPublisher, events: list[AssetEvent], rate: float, *, lane: Lane | None = None
) -> list[float]:
    """Publish at ``rate`` events/s; with ``lane``, return each event's publish -> committed time (ms)."""
    return (await publish_paced(pub, events, rate, lane=lane)).committed_ms


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts (le -> count) of one histogram in Prometheus text."""
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name + "_bucket":
                le = float(s.labels["le"])
                out[le] = out.get(le, 0.0) + s.value
    return out


def histogram_sums(text: str, name: str, label: str | None = None) -> dict[str, tuple[float, float]]:
    """(sum, count) of one histogram in Prometheus text, per value of ``label`` ("" without one).

    >>> text = 'h_sum{stage="embed"} 1.5\\nh_count{stage="embed"} 3.0\\n'
    >>> histogram_sums("# TYPE h histogram\\n" + text, "h", "stage")
    {'embed': (1.5, 3.0)}
    """
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            for k, suffix in enumerate(("_sum", "_count")):
                if s.name == name + suffix:
                    out.setdefault(s.labels.get(label, "") if label else "", [0.0, 0.0])[k] += s.value
    return {key: (v[0], v[1]) for key, v in out.items()}


def mean_between(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
                 ) -> dict[str, float]:
    """Per key, the mean of the observations between two scrapes (delta sum / delta count); keys with none left out.

    >>> mean_between({"a": (1.0, 2.0)}, {"a": (4.0, 5.0), "b": (0.0, 0.0)})
    {'a': 1.0}
    """
    out = {}
    for key, (total, count) in after.items():
        t0, c0 = before.get(key, (0.0, 0.0))
        if count > c0:
            out[key] = (total - t0) / (count - c0)
    return out


def freshness_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[float, float]:
    """p50 / p99 in ms of the observations between two scrapes (Prometheus histogram_quantile maths)."""
    les = sorted(after)
    counts = [after[le] - before.get(le, 0.0) for le in les]
    total = counts[-1] if counts else 0.0
    out = {}
    for q in (0.5, 0.99):
        rank, prev_le, prev_c = q * total, 0.0, 0.0
        value = float("nan")
        for le, c in zip(les, counts, strict=True):
            if c >= rank and total > 0:
                value = le if le == float("inf") else prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
                if le == float("inf"):
                    value = prev_le
                break
            prev_le, prev_c = le, c
        out[q] = round(value * 1000, 1)
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return round(s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))], 1)
