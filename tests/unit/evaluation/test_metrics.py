"""The figures of a run, checked against values worked out by hand: the measures per query (through
ir-measures), the means and their bootstrap intervals, rows per direction and space, gaps, re-ranking."""

from __future__ import annotations

import math

import pytest

from services.evaluation.metrics import (
    LEGEND,
    MEASURES,
    NAMES,
    compare_rerank,
    diff_ci,
    legend,
    mean_ci,
    modality_gaps,
    per_query,
    percentiles,
    score_run,
)
from services.evaluation.runner import Answered, Failed, Hit, RerankInfo, RunResult

QRELS = {
    "q1": {"a": 1, "b": 1},
    "q2": {"c": 2, "d": 1},
    "q3": {"e": 1},
    "q4": {"f": 1, "g": 0},
    "q5": {"a": 1},
    "q6": {"r1": 1, "r2": 1, "r3": 1},
    "q7": {"r": 1},
    "q8": {"s1": 1, "s2": 1, "s3": 1, "s4": 1},
}
NOISE = [f"n{i}" for i in range(1, 11)]
RANKINGS = {
    "q1": ["x", "a", "y", "b"],  # relevant at ranks 2 and 4
    "q2": ["d", "c"],  # graded: the less relevant first
    "q3": [],  # no results at all
    "q4": ["g", "f"],  # a judged-not-relevant asset first
    "q5": ["a", "z"],  # the gateway's order, even if the scores tie (trec_eval would sort z first)
    "q6": [*NOISE[:6], "r1", "n8"],  # one of three relevant, at rank 7
    "q7": [*NOISE, "r"],  # the relevant asset at rank 11: past every cutoff, but RR has none
    "q8": ["s1", *NOISE[:9]],  # one of four relevant, first: the case trec recall at 1 gets wrong
}


def log2(x: float) -> float:
    return math.log(x, 2)


def test_the_names_are_the_cross_modal_ones_and_say_which_measure_computes_them() -> None:
    assert NAMES == ("R@1", "R@5", "R@10", "MRR", "nDCG@10", "Rec@10")
    assert [str(m) for m in MEASURES] == ["Success@1", "Success@5", "Success@10", "RR", "nDCG@10", "R@10"]
    assert {n: e["ir_measures"] for n, e in legend().items()} == {
        "R@1": "Success@1", "R@5": "Success@5", "R@10": "Success@10", "MRR": "RR", "nDCG@10": "nDCG@10",
        "Rec@10": "R@10"}
    assert set(LEGEND) == set(NAMES) and all(legend()[n]["meaning"] == LEGEND[n] for n in NAMES)


def test_measures_per_query_match_the_hand_computed_values() -> None:
    v = per_query(QRELS, RANKINGS)
    assert set(v) == set(RANKINGS) and all(set(m) == set(NAMES) for m in v.values())

    def at(qid: str) -> tuple[float, ...]:
        return tuple(v[qid][n] for n in ("R@1", "R@5", "R@10", "MRR", "Rec@10"))

    # R@k is Success@k: is a relevant asset in the top k; Rec@10 the share of the relevant assets in the top 10
    # q1: nothing at rank 1; both relevant within 5; first relevant at rank 2
    assert at("q1") == (0.0, 1.0, 1.0, 0.5, 1.0)
    assert v["q1"]["nDCG@10"] == pytest.approx((1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3)))
    # q2: the less relevant d first is still a hit; nDCG: gain = relevance (trec_eval's ndcg), discount
    # log2(rank + 1), the ideal order puts c (2) first
    assert at("q2") == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert v["q2"]["nDCG@10"] == pytest.approx((1 + 2 / log2(3)) / (2 + 1 / log2(3)))
    assert v["q3"] == dict.fromkeys(NAMES, 0.0)
    # q4: g is judged, but not relevant
    assert at("q4") == (0.0, 1.0, 1.0, 0.5, 1.0)
    assert v["q4"]["nDCG@10"] == pytest.approx(1 / log2(3))
    assert v["q5"] == dict.fromkeys(NAMES, 1.0)
    # q6: r1 at rank 7: a hit within 10, not within 5; one of three relevant assets
    assert at("q6") == pytest.approx((0.0, 0.0, 1.0, 1 / 7, 1 / 3))
    assert v["q6"]["nDCG@10"] == pytest.approx((1 / log2(8)) / (1 + 1 / log2(3) + 1 / log2(4)))
    # q7: r at rank 11 counts for MRR only
    assert at("q7") == pytest.approx((0.0, 0.0, 0.0, 1 / 11, 0.0)) and v["q7"]["nDCG@10"] == 0.0
    # q8: four relevant, one of them first: R@1 1 (trec recall at 1 would give 1/4), Rec@10 1/4
    assert at("q8") == (1.0, 1.0, 1.0, 1.0, 0.25)
    assert v["q8"]["nDCG@10"] == pytest.approx(1 / (1 + 1 / log2(3) + 1 / log2(4) + 1 / log2(5)))


def test_a_repeated_asset_counts_once_at_its_first_rank() -> None:
    assert per_query({"q": {"a": 1}}, {"q": ["b", "b", "a"]})["q"]["MRR"] == 0.5


def test_the_interval_contains_the_mean_and_is_reproducible() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.25, 1.0, 0.0]
    e = mean_ci(values)
    assert e.mean == pytest.approx(0.575)
    assert e.low is not None and e.high is not None
    assert 0.0 <= e.low < e.mean < e.high <= 1.0
    assert mean_ci(values) == e  # seeded
    narrow = mean_ci(values, confidence=0.5)
    assert narrow.low is not None and narrow.high is not None
    assert e.low <= narrow.low and narrow.high <= e.high


def test_degenerate_samples() -> None:
    assert mean_ci([0.5]) == mean_ci([0.5]) and (mean_ci([0.5]).low, mean_ci([0.5]).high) == (None, None)
    same = mean_ci([1.0, 1.0, 1.0])
    assert (same.mean, same.low, same.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="no values"):
        mean_ci([])


def test_difference_of_two_independent_samples_and_of_paired_ones() -> None:
    a, b = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]
    d = diff_ci(a, b)
    assert d.mean == pytest.approx(4 / 6 - 1 / 4)
    assert d.low is not None and d.high is not None and d.low < d.mean < d.high
    paired = diff_ci([1.0, 1.0, 0.5], [0.0, 1.0, 0.5], paired=True)
    assert paired.mean == pytest.approx(1 / 3)
    unchanged = diff_ci([1.0, 0.0], [1.0, 0.0], paired=True)
    assert (unchanged.mean, unchanged.low, unchanged.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same length"):
        diff_ci([1.0], [1.0, 0.0], paired=True)


def test_percentiles() -> None:
    p = percentiles([float(i) for i in range(1, 101)])
    assert p is not None and p.p50 == pytest.approx(50.5) and p.p99 == pytest.approx(99.01)
    assert percentiles([]) is None


def answered(qid: str, direction: str, ids: list[str], *, space: str = "clip", latency: float = 10.0,
             rerank_ms: float | None = None) -> Answered:
    rr = None if rerank_ms is None else RerankInfo("tiny", rerank_ms, 20, degraded=False, reason=None)
    return Answered(qid, direction, [Hit(i, 1.0) for i in ids], latency, latency / 2, space, "m", rr)


def run(outcomes: list[Answered | Failed], *, rerank: bool = False, space: str | None = None) -> RunResult:
    return RunResult("http://gw", 10, rerank, space, list(outcomes), 1.0, 0.0)


def test_a_run_scores_per_direction_and_space_and_counts_failures_apart() -> None:
    r = run([
        answered("q1", "text->image", RANKINGS["q1"], latency=10.0),
        answered("q5", "text->image", RANKINGS["q5"], latency=30.0),
        Failed("q2", "text->image", 400, "undecodable", "not an image"),
        answered("q3", "image->text", [], space="clap"),
        answered("q4", "image->text", RANKINGS["q4"]),
    ])
    rows = score_run(r, QRELS)
    assert [(row.direction, row.space, row.n, len(row.failures)) for row in rows] == [
        ("text->image", "clip", 2, 1), ("image->text", "clap", 1, 0), ("image->text", "clip", 1, 0)]
    t2i = rows[0]
    assert t2i.measures["R@1"].mean == pytest.approx(0.5)  # q1 0, q5 1; the failed q2 is not in the mean
    assert t2i.measures["MRR"].mean == pytest.approx(0.75)
    assert t2i.measures["Rec@10"].mean == pytest.approx(1.0)
    assert rows[2].measures["R@5"].mean == pytest.approx(1.0)  # q4: f at rank 2
    assert t2i.failures[0].code == "undecodable" and not t2i.space_asked and not t2i.rerank
    assert t2i.latency is not None and t2i.latency.p50 == pytest.approx(20.0)
    assert t2i.took is not None and t2i.took.p50 == pytest.approx(10.0)
    assert t2i.rerank_took is None


def test_the_modality_gap_is_forward_minus_backward_in_the_same_space() -> None:
    rows = score_run(run([
        answered("q5", "text->image", ["a"]), answered("q1", "text->image", ["a", "b"]),
        answered("q4", "image->text", ["g", "f"]), answered("q2", "image->text", ["c"]),
    ]), QRELS)
    (gap,) = modality_gaps(rows)
    assert (gap.forward, gap.backward, gap.space) == ("text->image", "image->text", "clip")
    # R@1: q5 and q1 both hit at rank 1; of q4 (g judged not relevant) and q2 (c relevant) one does
    assert gap.measures["R@1"].mean == pytest.approx((1.0 + 1.0) / 2 - (0.0 + 1.0) / 2)
    assert gap.measures["MRR"].mean == pytest.approx(1.0 - (0.5 + 1.0) / 2)
    # Rec@10: q2 returned c but not d, one of its two relevant assets
    assert gap.measures["Rec@10"].mean == pytest.approx(1.0 - (1.0 + 0.5) / 2)
    assert modality_gaps(rows[:1]) == []


def test_rerank_comparison_pairs_the_same_queries_and_adds_latency() -> None:
    before = run([answered("q1", "text->image", ["x", "a", "b"], latency=10.0),
                  answered("q5", "text->image", ["z", "a"], latency=20.0)])
    after = run([answered("q1", "text->image", ["a", "x", "b"], latency=15.0, rerank_ms=4.0),
                 answered("q5", "text->image", ["z", "a"], latency=26.0, rerank_ms=6.0)], rerank=True)
    rows = score_run(before, QRELS) + score_run(after, QRELS)
    (d,) = compare_rerank(rows)
    # R@1 is Success@1: q1's first result becomes relevant (1, where trec recall at 1 would give 1/2 of its two
    # relevant assets); q5 stays at 0
    assert (d.before["R@1"].mean, d.after["R@1"].mean) == (0.0, 0.5)
    assert d.delta["R@1"].mean == pytest.approx(0.5)
    assert d.delta["MRR"].mean == pytest.approx(((1.0 - 0.5) + (0.5 - 0.5)) / 2)
    assert d.delta["Rec@10"].mean == 0.0  # the same assets in the top 10, in another order
    assert d.rerank_took is not None and d.rerank_took.p50 == pytest.approx(5.0)
    assert d.added_latency is not None and d.added_latency.p50 == pytest.approx(5.5)
    assert compare_rerank(score_run(before, QRELS)) == []
