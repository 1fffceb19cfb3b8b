"""Reading a worker's /metrics text, and quantiles from histogram buckets the way Prometheus computes them.

The status page needs a few worker figures without a Prometheus server: the freshness histogram, events by
outcome, dead letters by reason, and whether the worker is paused after a transient failure, with its
retries and pauses by cause. Quantiles come from bucket *deltas* between two scrapes (what happened
in the interval), interpolated linearly inside the bucket like PromQL's ``histogram_quantile``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

FRESHNESS = "xmodal_freshness_seconds"
EVENTS = "xmodal_events"  # counters are named without _total in parsed families
DEAD_LETTERS = "xmodal_dead_letters"
RETRIES = "xmodal_worker_retries"
PAUSES = "xmodal_worker_pauses"
PAUSED = "xmodal_worker_paused"
PAUSE_CAUSE = "xmodal_worker_pause_cause"
SKIPPED = "xmodal_consumer_skipped_offsets"  # offsets that never reached the worker (streams/offsets.py)


@dataclass(frozen=True)
class Buckets:
    """A histogram's cumulative buckets: (upper bound, observations <= bound), ascending, +Inf last."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return self.counts[-1] if self.counts else 0.0

    def minus(self, earlier: Buckets | None) -> Buckets | None:
        """What was observed since ``earlier``. None without a baseline (a worker seen for the first time);
        after a counter reset (the worker restarted) everything counted so far is new, as in PromQL rate()."""
        if earlier is None or earlier.bounds != self.bounds:
            return None
        deltas = tuple(c - e for c, e in zip(self.counts, earlier.counts, strict=True))
        if any(d < 0 for d in deltas):
            return self
        return Buckets(self.bounds, deltas)


@dataclass
class WorkerFigures:
    """What the status page reads from one worker's /metrics."""

    freshness: Buckets | None = None
    events: dict[str, float] = field(default_factory=dict)  # outcome -> total since the worker started
    dead_letters: dict[str, float] = field(default_factory=dict)  # reason -> total since the worker started
    retries: dict[str, float] = field(default_factory=dict)  # cause -> retried steps since the worker started
    pauses: dict[str, float] = field(default_factory=dict)  # cause -> paused periods since the worker started
    paused: bool | None = None  # consumption paused after a transient failure; None: the worker does not say
    pause_cause: str | None = None  # the cause of the newest failure while paused, as the worker says it
    skipped_offsets: float = 0.0  # offsets that never reached it since it started: lost events, 0 when healthy


def parse_worker_metrics(text: str) -> WorkerFigures:
    """Pick the status page's figures out of Prometheus text; raises ValueError on malformed text.

    >>> fig = parse_worker_metrics('''# TYPE xmodal_dead_letters_total counter
    ... xmodal_dead_letters_total{reason="invalid_json"} 3.0
    ... # TYPE xmodal_freshness_seconds histogram
    ... xmodal_freshness_seconds_bucket{le="0.1"} 4.0
    ... xmodal_freshness_seconds_bucket{le="+Inf"} 5.0
    ... xmodal_freshness_seconds_count 5.0
    ... ''')
    >>> fig.dead_letters, fig.freshness
    ({'invalid_json': 3.0}, Buckets(bounds=(0.1, inf), counts=(4.0, 5.0)))

    A worker paused while Weaviate is away says so, and counts its retries and pauses by cause:

    >>> fig = parse_worker_metrics('''# TYPE xmodal_worker_paused gauge
    ... xmodal_worker_paused 1.0
    ... # TYPE xmodal_worker_retries_total counter
    ... xmodal_worker_retries_total{cause="store_unreachable"} 7.0
    ... xmodal_worker_retries_total{cause="store_timeout"} 2.0
    ... # TYPE xmodal_worker_pauses_total counter
    ... xmodal_worker_pauses_total{cause="store_unreachable"} 1.0
    ... # TYPE xmodal_worker_pause_cause gauge
    ... xmodal_worker_pause_cause{cause="store_unreachable"} 1.0
    ... xmodal_worker_pause_cause{cause="store_timeout"} 0.0
    ... ''')
    >>> fig.paused, fig.retries, fig.pauses, fig.pause_cause
    (True, {'store_unreachable': 7.0, 'store_timeout': 2.0}, {'store_unreachable': 1.0}, 'store_unreachable')
    >>> parse_worker_metrics("").paused is None  # a worker that exports no such gauge (an older build)
    True

    Offsets that never reached the worker (lost events), summed over its partitions:

    >>> parse_worker_metrics('''# TYPE xmodal_consumer_skipped_offsets_total counter
    ... xmodal_consumer_skipped_offsets_total{topic="assets",partition="2"} 4.0
    ... xmodal_consumer_skipped_offsets_total{topic="assets",partition="0"} 1.0
    ... ''').skipped_offsets
    5.0
    """
    fig = WorkerFigures()
    # counter family -> the label it is summed by and the figure it fills
    by_label = {EVENTS: ("outcome", fig.events), DEAD_LETTERS: ("reason", fig.dead_letters),
                RETRIES: ("cause", fig.retries), PAUSES: ("cause", fig.pauses)}
    for family in text_string_to_metric_families(text):
        if family.name == FRESHNESS:
            bucket_samples = [(float(s.labels["le"]), s.value) for s in family.samples
                              if s.name.endswith("_bucket")]
            fig.freshness = _buckets(bucket_samples)
        elif family.name == PAUSED:
            fig.paused = any(s.value > 0 for s in family.samples)
        elif family.name == PAUSE_CAUSE:
            fig.pause_cause = next((s.labels["cause"] for s in family.samples if s.value > 0 and "cause" in s.labels),
                                   None)
        elif family.name == SKIPPED:
            fig.skipped_offsets = sum(s.value for s in family.samples if s.name.endswith("_total"))
        elif family.name in by_label:
            label, target = by_label[family.name]
            for s in family.samples:
                if s.name.endswith("_total") and label in s.labels:
                    target[s.labels[label]] = target.get(s.labels[label], 0.0) + s.value
    return fig


def _buckets(samples: Iterable[tuple[float, float]]) -> Buckets | None:
    ordered = sorted(samples)
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    return Buckets(tuple(b for b, _ in ordered), tuple(c for _, c in ordered))


def merge(parts: Iterable[Buckets | None]) -> Buckets | None:
    """Sum histograms with the same bounds (several workers, several intervals); None when there are none."""
    present = [p for p in parts if p is not None]
    if not present:
        return None
    bounds = present[0].bounds
    same = [p for p in present if p.bounds == bounds]  # a worker on other buckets cannot be summed: skipped
    return Buckets(bounds, tuple(sum(col) for col in zip(*(p.counts for p in same), strict=True)))


def quantile(q: float, buckets: Buckets | None) -> float | None:
    """The q-quantile (0 <= q <= 1) of cumulative ``buckets``, as PromQL's histogram_quantile: linear
    interpolation inside the bucket holding the rank, the first bucket starting at 0, and a rank in the +Inf
    bucket answered with the highest finite bound. None when nothing was observed.

    >>> b = Buckets((0.1, 0.2, 0.5, math.inf), (50.0, 90.0, 100.0, 100.0))
    >>> quantile(0.5, b), round(quantile(0.7, b), 3), quantile(0.95, b)
    (0.1, 0.15, 0.35)
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    if buckets is None or len(buckets.bounds) < 2 or buckets.total <= 0:
        return None
    counts = _monotonic(buckets.counts)
    rank = q * counts[-1]
    idx = next(i for i, c in enumerate(counts) if c >= rank)
    bounds = buckets.bounds
    if idx == len(bounds) - 1:
        return bounds[-2]
    if idx == 0 and bounds[0] <= 0:
        return bounds[0]
    start = 0.0 if idx == 0 else bounds[idx - 1]
    below = 0.0 if idx == 0 else counts[idx - 1]
    in_bucket = counts[idx] - below
    if in_bucket <= 0:
        return start
    return start + (bounds[idx] - start) * (rank - below) / in_bucket


def _monotonic(counts: Sequence[float]) -> list[float]:
    """Scrapes are not atomic across buckets: a later bucket may read lower; Prometheus fixes it the same way."""
    out: list[float] = []
    for c in counts:
        out.append(max(c, out[-1]) if out else c)
    return out
