"""Quantiles from histogram buckets (PromQL semantics), bucket deltas, and reading real exposition text."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.monitoring.promtext import Buckets, merge, parse_worker_metrics, quantile

INF = math.inf


def cumulative(bounds: tuple[float, ...], values: list[float]) -> Buckets:
    counts = tuple(float(sum(1 for v in values if v <= b)) for b in bounds)
    return Buckets(bounds, counts)


def test_interpolates_linearly_inside_the_bucket_holding_the_rank() -> None:
    b = Buckets((0.1, 0.2, 0.5, INF), (20.0, 60.0, 100.0, 100.0))
    # rank 50 lies in (0.1, 0.2]: 30 of its 40 observations are below -> 0.1 + 0.1 * 30/40
    assert quantile(0.5, b) == pytest.approx(0.175)
    # rank 99 lies in (0.2, 0.5]: 39 of 40 -> 0.2 + 0.3 * 39/40
    assert quantile(0.99, b) == pytest.approx(0.4925)
    assert quantile(0.2, b) == pytest.approx(0.1)  # exactly on a bound: the lower bucket's top
    assert quantile(0.0, b) == pytest.approx(0.0)


def test_the_first_bucket_starts_at_zero() -> None:
    assert quantile(0.5, Buckets((0.1, INF), (10.0, 10.0))) == pytest.approx(0.05)


def test_a_rank_in_the_inf_bucket_answers_the_highest_finite_bound() -> None:
    assert quantile(0.99, Buckets((0.1, 0.2, INF), (10.0, 10.0, 100.0))) == 0.2


def test_nothing_observed_has_no_quantile() -> None:
    assert quantile(0.5, Buckets((0.1, INF), (0.0, 0.0))) is None
    assert quantile(0.5, None) is None
    assert quantile(0.5, Buckets((INF,), (5.0,))) is None  # a single bucket bounds nothing


def test_out_of_range_q_is_an_error() -> None:
    with pytest.raises(ValueError, match="quantile"):
        quantile(1.5, Buckets((0.1, INF), (1.0, 1.0)))


def test_non_monotonic_buckets_are_repaired_like_prometheus() -> None:
    # a scrape is not atomic: a later bucket may read one lower than an earlier one
    assert quantile(0.5, Buckets((0.1, 0.2, INF), (10.0, 9.0, 10.0))) == pytest.approx(0.05)


def test_estimate_stays_within_one_bucket_of_the_true_quantile() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(math.log(0.08), 0.6) for _ in range(5000)]
    bounds = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, INF)
    b = cumulative(bounds, values)
    for q in (0.5, 0.9, 0.99):
        true = sorted(values)[int(q * len(values)) - 1]
        est = quantile(q, b)
        assert est is not None
        hi = next(x for x in bounds if x >= true)
        lo = max([0.0, *(x for x in bounds if x < true)])
        assert lo <= est <= hi, (q, true, est)


def test_delta_is_what_happened_in_between() -> None:
    before = Buckets((0.1, INF), (5.0, 6.0))
    after = Buckets((0.1, INF), (7.0, 10.0))
    assert after.minus(before) == Buckets((0.1, INF), (2.0, 4.0))


def test_delta_without_baseline_is_unknown_and_a_reset_counts_everything_new() -> None:
    now = Buckets((0.1, INF), (3.0, 3.0))
    assert now.minus(None) is None
    assert now.minus(Buckets((0.1, INF), (50.0, 60.0))) == now  # the worker restarted
    assert now.minus(Buckets((0.2, INF), (1.0, 1.0))) is None  # other buckets: not comparable


def test_merge_sums_same_bounds_and_skips_others() -> None:
    a, b = Buckets((0.1, INF), (1.0, 2.0)), Buckets((0.1, INF), (3.0, 3.0))
    assert merge([a, None, b]) == Buckets((0.1, INF), (4.0, 5.0))
    assert merge([a, Buckets((0.5, INF), (9.0, 9.0))]) == a
    assert merge([None]) is None


def test_reads_figures_from_real_exposition_text() -> None:
    reg = CollectorRegistry()
    fresh = Histogram("xmodal_freshness_seconds", "f", buckets=(0.05, 0.1, 0.2), registry=reg)
    events = Counter("xmodal_events_total", "e", ["outcome"], registry=reg)
    dead = Counter("xmodal_dead_letters_total", "d", ["reason"], registry=reg)
    Counter("xmodal_other_total", "o", ["reason"], registry=reg).labels("x").inc(99)
    for v in (0.01, 0.07, 0.07, 0.15, 3.0):
        fresh.observe(v)
    events.labels("stored").inc(4)
    events.labels("dead_letter").inc(2)
    dead.labels("invalid_json").inc(2)
    fig = parse_worker_metrics(generate_latest(reg).decode())
    assert fig.freshness == Buckets((0.05, 0.1, 0.2, INF), (1.0, 3.0, 4.0, 5.0))
    assert fig.events == {"stored": 4.0, "dead_letter": 2.0}
    assert fig.dead_letters == {"invalid_json": 2.0}


def test_reads_pause_state_retries_and_pauses_by_cause() -> None:
    reg = CollectorRegistry()
    paused = Gauge("xmodal_worker_paused", "p", registry=reg)
    retries = Counter("xmodal_worker_retries_total", "r", ["cause"], registry=reg)
    pauses = Counter("xmodal_worker_pauses_total", "p", ["cause"], registry=reg)
    Counter("xmodal_transient_retries_total", "the old name", ["error"], registry=reg).labels("x").inc(5)
    assert parse_worker_metrics(generate_latest(reg).decode()).paused is False  # exported, and 0
    paused.set(1)
    retries.labels("store_unreachable").inc(7)
    retries.labels("dead_letter").inc(1)
    pauses.labels("store_unreachable").inc()
    fig = parse_worker_metrics(generate_latest(reg).decode())
    assert fig.paused is True
    assert fig.retries == {"store_unreachable": 7.0, "dead_letter": 1.0}
    assert fig.pauses == {"store_unreachable": 1.0}


def test_text_without_the_figures_reads_as_empty() -> None:
    fig = parse_worker_metrics("# HELP up x\n# TYPE up gauge\nup 1\n")
    assert fig.freshness is None and fig.events == {} and fig.dead_letters == {}
    assert fig.paused is None and fig.retries == {} and fig.pauses == {}  # a worker that predates the gauge


def test_malformed_text_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_worker_metrics('xmodal_events_total{outcome="stored" 1\n')
