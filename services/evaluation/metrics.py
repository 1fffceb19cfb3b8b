"""The figures of a run: IR measures per query (ir-measures over trec_eval), their means per direction with
bootstrap confidence intervals (scipy), latency percentiles, the modality-bias gap between opposite
directions, and what re-ranking changed.

The columns, named as cross-modal retrieval papers (CLIP, clip-retrieval) name them; the name is also the
key of the per-query values and of the JSON report, and LEGEND says the same in words:

- R@1, R@5, R@10: ir-measures Success@1, @5, @10: 1 when a relevant asset is among the top k results, else
  0; the mean is the share of queries with a relevant result in the top k (the "Recall@K" of those papers).
- MRR: ir-measures RR, the reciprocal rank of the first relevant result (0 when none is among the k
  results asked for); its mean is the mean reciprocal rank.
- nDCG@10: ir-measures nDCG@10, trec_eval's ndcg_cut_10: gain = the qrels relevance, discount
  log2(rank + 1), divided by the gain of the ideal order of the judged assets.
- Rec@10: ir-measures R@10, trec recall: the share of the query's relevant assets within the top 10; a
  query with n relevant assets scores at most 10/n, so compare it only between runs of one set.

They are computed by trec_eval from the gateway's ranking: an asset the qrels do not judge counts as not
relevant. trec_eval orders a run by score and breaks ties by asset id, so the gateway's order is passed as
scores n, n-1, ..., 1, never as the scores it returned. Means are over the queries answered; failed ones
are counted apart. Confidence intervals are 95% BCa bootstrap intervals (percentile ones where BCa
degenerates), seeded: the same run gives the same interval. With fewer than two values there is no
interval (None).

A query with four relevant pictures and one of them first: R@1 is 1, Rec@10 only 1/4.

>>> v = per_query({"q1": dict.fromkeys("abcd", 1), "q2": {"c": 1}}, {"q1": ["a", "x"], "q2": ["x", "c"]})
>>> v["q1"]["R@1"], v["q1"]["Rec@10"], v["q2"]["R@1"], v["q2"]["R@5"], v["q2"]["MRR"]
(1.0, 0.25, 0.0, 1.0, 0.5)
>>> mean_ci([1.0, 1.0, 1.0])
Estimate(mean=1.0, low=1.0, high=1.0)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import ir_measures
import numpy as np
import numpy.typing as npt
from ir_measures import RR, R, Success, nDCG

from services.evaluation.runner import Answered, Failed, Outcome, RunResult
from services.evaluation.sets import DIRECTIONS

#: What trec_eval computes, in the order of NAMES.
MEASURES: Final = (Success @ 1, Success @ 5, Success @ 10, RR, nDCG @ 10, R @ 10)
#: The names of MEASURES in the report, the JSON and the per-query values: "R@1" is Success@1 (not trec's R@1).
NAMES: Final = ("R@1", "R@5", "R@10", "MRR", "nDCG@10", "Rec@10")
_NAME_OF: Final = {str(m): name for m, name in zip(MEASURES, NAMES, strict=True)}
#: Each name: what its per-query value and its mean mean.
LEGEND: Final = {
    "R@1": "share of queries whose first result is relevant (per query 1 or 0): Recall@1 as cross-modal "
           "retrieval papers use it",
    "R@5": "share of queries with a relevant asset in the top 5 (per query 1 or 0)",
    "R@10": "share of queries with a relevant asset in the top 10 (per query 1 or 0)",
    "MRR": "mean reciprocal rank: per query 1 / the rank of the first relevant result (0 when none is in "
           "the k results)",
    "nDCG@10": "normalised discounted cumulative gain of the top 10: gain = qrels relevance, discount "
               "log2(rank + 1), over the ideal order's",
    "Rec@10": "trec recall at 10: share of the query's relevant assets in the top 10 (at most 10/n with n "
              "relevant assets)",
}
#: Opposite directions whose difference shows a modality bias of the model.
OPPOSITES: Final = (("text->image", "image->text"), ("text->audio", "audio->text"))
CONFIDENCE: Final = 0.95
RESAMPLES: Final = 9999
SEED: Final = 20261127

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Estimate:
    """A mean (or a difference of means) and its confidence interval; low/high None with < 2 values."""

    mean: float
    low: float | None
    high: float | None

    def to_json(self) -> dict[str, float | None]:
        return {"mean": self.mean, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p99: float

    def to_json(self) -> dict[str, float]:
        return {"p50": round(self.p50, 3), "p99": round(self.p99, 3)}


@dataclass(frozen=True)
class Row:
    """One direction answered by one space in one run (with or without re-ranking)."""

    direction: str
    space: str
    space_asked: bool  # the run named the space; False: the gateway chose it
    rerank: bool
    models: list[str]
    measures: dict[str, Estimate]
    per_query: dict[str, dict[str, float]]  # qid -> measure -> value, answered queries only
    failures: list[Failed]
    latency: Percentiles | None  # client side, ms
    took: Percentiles | None  # the responses' took_ms
    rerank_took: Percentiles | None  # the responses' rerank.took_ms
    rerank_degraded: int

    @property
    def n(self) -> int:
        return len(self.per_query)

    @property
    def key(self) -> tuple[str, str]:
        return self.direction, self.space


@dataclass(frozen=True)
class Gap:
    """forward minus backward (e.g. text->image minus image->text), per measure, in one space and run."""

    forward: str
    backward: str
    space: str
    rerank: bool
    measures: dict[str, Estimate]


@dataclass(frozen=True)
class RerankDelta:
    """The same direction and space without and with re-ranking; ``delta`` is paired over the queries
    answered in both runs (after minus before)."""

    direction: str
    space: str
    before: dict[str, Estimate]
    after: dict[str, Estimate]
    delta: dict[str, Estimate]
    rerank_took: Percentiles | None
    added_latency: Percentiles | None  # client latency with re-ranking minus without (p50 - p50, p99 - p99)


def per_query(qrels: Mapping[str, Mapping[str, int]], rankings: Mapping[str, Sequence[str]]) -> dict[
        str, dict[str, float]]:
    """Every measure of every ranked query (ids best first); a query with no results scores 0 on all."""
    run: dict[str, dict[str, float]] = {}
    for qid, ids in rankings.items():
        unique = list(dict.fromkeys(ids))
        run[qid] = {aid: float(len(unique) - i) for i, aid in enumerate(unique)}
    values = {qid: dict.fromkeys(NAMES, 0.0) for qid in rankings}
    judged = {qid: dict(qrels[qid]) for qid in rankings}
    if values:
        for m in ir_measures.iter_calc(list(MEASURES), judged, run):
            values[m.query_id][_NAME_OF[str(m.measure)]] = float(m.value)
    return values


def legend() -> dict[str, dict[str, str]]:
    """Each name of NAMES: the ir-measures measure that computes it and what it means (for the JSON report).

    >>> legend()["R@1"]["ir_measures"], legend()["Rec@10"]["ir_measures"]
    ('Success@1', 'R@10')
    """
    return {name: {"ir_measures": str(m), "meaning": LEGEND[name]} for m, name in zip(MEASURES, NAMES, strict=True)}


def mean_ci(values: Sequence[float], *, confidence: float = CONFIDENCE, n_resamples: int = RESAMPLES,
            seed: int = SEED) -> Estimate:
    """The mean of ``values`` with its bootstrap confidence interval."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no values to average")
    low, high = _interval((a,), _mean, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return Estimate(float(a.mean()), low, high)


def diff_ci(a: Sequence[float], b: Sequence[float], *, paired: bool = False, confidence: float = CONFIDENCE,
            n_resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """mean(a) - mean(b) with its bootstrap interval: two independent samples, or paired ones (same queries,
    same order), where it is the interval of the mean per-query difference."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("both samples need values")
    if paired:
        if x.size != y.size:
            raise ValueError("paired samples need the same length")
        return mean_ci(list(x - y), confidence=confidence, n_resamples=n_resamples, seed=seed)
    low, high = _interval((x, y), _diff, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return Estimate(float(x.mean() - y.mean()), low, high)


def _mean(x: Floats, axis: int = -1) -> Floats:
    return np.asarray(np.mean(x, axis=axis))


def _diff(x: Floats, y: Floats, axis: int = -1) -> Floats:
    return np.asarray(np.mean(x, axis=axis) - np.mean(y, axis=axis))


def _interval(samples: tuple[Floats, ...], statistic: Callable[..., Floats], *, confidence: float,
              n_resamples: int, seed: int) -> tuple[float | None, float | None]:
    from scipy import stats  # type: ignore[import-untyped]

    if any(s.size < 2 for s in samples):
        return None, None
    if all(np.ptp(s) == 0 for s in samples):  # no spread: every resample gives the same statistic
        value = float(statistic(*samples))
        return value, value
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # BCa on lopsided data warns and gives NaN: take percentile then
            try:
                res = stats.bootstrap(samples, statistic, n_resamples=n_resamples, confidence_level=confidence,
                                      method=method, vectorized=True, batch=1000, rng=np.random.default_rng(seed))
            except (RuntimeWarning, stats.DegenerateDataWarning):
                continue
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return low, high
    return None, None


def percentiles(values: Sequence[float]) -> Percentiles | None:
    if not values:
        return None
    p50, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 99])
    return Percentiles(float(p50), float(p99))


def score_run(run: RunResult, qrels: Mapping[str, Mapping[str, int]], *, seed: int = SEED) -> list[Row]:
    """The rows of one run: one per direction and answering space, in DIRECTIONS order."""
    first_space: dict[str, str] = {}
    for a in run.answered:
        first_space.setdefault(a.direction, a.space)
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in run.outcomes:
        space = run.space or (o.space if isinstance(o, Answered) else first_space.get(o.direction, "-"))
        groups.setdefault((o.direction, space), []).append(o)
    order = sorted(groups, key=lambda key: (DIRECTIONS.index(key[0]), key[1]))
    return [_row(d, s, groups[(d, s)], run=run, qrels=qrels, seed=seed) for d, s in order]


def _row(direction: str, space: str, outcomes: list[Outcome], *, run: RunResult,
         qrels: Mapping[str, Mapping[str, int]], seed: int) -> Row:
    answered = [o for o in outcomes if isinstance(o, Answered)]
    values = per_query(qrels, {a.qid: a.ranking for a in answered})
    measures = {name: mean_ci([v[name] for v in values.values()], seed=seed) for name in NAMES} if values else {}
    reranked = [a.rerank for a in answered if a.rerank is not None]
    return Row(
        direction=direction, space=space, space_asked=run.space is not None, rerank=run.rerank,
        models=sorted({a.model for a in answered}), measures=measures, per_query=values,
        failures=[o for o in outcomes if isinstance(o, Failed)],
        latency=percentiles([a.latency_ms for a in answered]), took=percentiles([a.took_ms for a in answered]),
        rerank_took=percentiles([r.took_ms for r in reranked]), rerank_degraded=sum(r.degraded for r in reranked),
    )


def modality_gaps(rows: Sequence[Row], *, seed: int = SEED) -> list[Gap]:
    """Forward minus backward for each pair of OPPOSITES answered in the same space and run."""
    by_key = {(r.direction, r.space, r.rerank): r for r in rows}
    gaps = []
    for r in rows:
        for forward, backward in OPPOSITES:
            other = by_key.get((backward, r.space, r.rerank))
            if r.direction != forward or other is None or not r.per_query or not other.per_query:
                continue
            gaps.append(Gap(forward, backward, r.space, r.rerank, {
                name: diff_ci([v[name] for v in r.per_query.values()],
                              [v[name] for v in other.per_query.values()], seed=seed)
                for name in NAMES}))
    return gaps


def compare_rerank(rows: Sequence[Row], *, seed: int = SEED) -> list[RerankDelta]:
    """A RerankDelta for every direction and space evaluated both without and with re-ranking (and with
    queries answered in both)."""
    before = {(r.key, r.space_asked): r for r in rows if not r.rerank}
    deltas = []
    for after in rows:
        base = before.get((after.key, after.space_asked))
        if not after.rerank or base is None:
            continue
        common = [qid for qid in base.per_query if qid in after.per_query]
        if not common:
            continue  # nothing answered in both: the failures section shows why
        delta = {name: diff_ci([after.per_query[q][name] for q in common], [base.per_query[q][name] for q in common],
                               paired=True, seed=seed) for name in NAMES}
        added = None
        if after.latency is not None and base.latency is not None:
            added = Percentiles(after.latency.p50 - base.latency.p50, after.latency.p99 - base.latency.p99)
        deltas.append(RerankDelta(after.direction, after.space, base.measures, after.measures, delta,
                                  after.rerank_took, added))
    return deltas

