"""The bench's report maths and table (bench/report.py, bench/rows.py, bench/rss.py): no stack needed."""

from __future__ import annotations

import doctest
import importlib
import math
import os
from typing import Any

import numpy as np
import pytest

from bench import report, rss
from bench.gateway_load import Phase, capacity_at
from bench.growth import unit_vectors
from bench.report import Row
from bench.rows import build_rows, ratios


@pytest.mark.parametrize("name", ["bench.report", "bench.rss", "bench.gateway_load", "bench.growth", "bench.common",
                                  "bench.profile"])
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_ratio_and_verdicts() -> None:
    assert report.ratio(455.0, 36.4) == 12.5
    assert report.ratio(1.0, 0.0) is None and report.ratio(math.nan, 1.0) is None
    assert report.verdict(10.0, 10.0) == "met"  # the target itself is met
    assert report.verdict(150.0, 150.0, at_most=True) == "met"
    assert report.verdict(150.1, 150.0, at_most=True) == "not met"
    assert report.verdict(math.nan, 1.0) == "n/a"


def test_freshness_rates_are_the_fixed_rate_then_fractions_of_the_maximum() -> None:
    assert report.freshness_rates(200.0, 400.0) == [200.0, 200, 320]
    assert report.freshness_rates(200.0, 1.0) == [200.0, 1, 1]  # never a rate of 0


def test_table_aligns_columns_and_right_aligns_values() -> None:
    lines = report.table([Row("worker", "455/s", "note"), Row("naive loop", "36/s")]).splitlines()
    assert lines[0].split() == ["measure", "value", "note"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].index("455/s") + len("455/s") == lines[3].index("36/s") + len("36/s")
    assert not lines[3].endswith(" ")


def test_machine_names_cores_memory_and_versions() -> None:
    m = report.machine()
    assert m["cores"] == os.cpu_count()
    assert m["python"].count(".") == 2
    assert m["torch"]  # installed in the project's environment
    assert set(m) >= {"cpu_model", "ram_gib", "os", "transformers"}
    assert "cores" in report.describe(m)


def test_rss_of_this_process_tree_is_positive() -> None:
    assert rss.tree_rss_kib(os.getpid()) > 0
    assert rss.descendants(1, {2: 1, 3: 2, 4: 3}) == {1, 2, 3, 4}


def test_capacity_at_target_ignores_steps_with_429s_or_slow_p99() -> None:
    ok = Phase("a", 50.0, 1.0, sent=100, ok=100, ok_ms=[10.0] * 100)
    shed = Phase("b", 80.0, 1.0, sent=100, ok=90, rejected_429=10, ok_ms=[10.0] * 90)
    slow = Phase("c", 90.0, 1.0, sent=100, ok=100, ok_ms=[30.0] * 100)
    assert capacity_at([ok, shed, slow], 25.0) == 50.0
    assert capacity_at([slow], 25.0) == 0.0


def _run() -> dict[str, Any]:
    phase = {"rejected_429": 0, "errors_5xx": 0, "client_errors": 0, "rejected_share": 0.0}
    return {
        "baseline_sink": {"events": 3000, "events_per_s": 2000.0},
        "baseline_sink_same_vectors": {"events": 3000, "events_per_s": 900.0, "vectors_per_event": 1.5},
        "worker_throughput": {"events": 3000, "events_per_s": 450.0, "batches": 20,
                              "rss": {"peak_rss_mib": 900.0},
                              "cpu_ms_per_1k_events": {"worker": 900.0, "weaviate": 500.0, "kafka": 100.0,
                                                       "all": 1500.0}},
        "naive_loop": {"events": 600, "events_per_s": 36.0},
        "worker_audio_throughput": {"events": 600, "events_per_s": 100.0, "batches": 4},
        "freshness": {"rss": {"peak_rss_mib": 1000.0}, "runs": [
            {"label": "fixed", "rate": 200.0, "offered_per_s": 199.0, "freshness_p50_ms": 80.0,
             "freshness_p99_ms": 240.0, "publish_to_committed_p50_ms": 110.0, "publish_to_committed_p99_ms": 300.0},
            {"label": "50% of max", "rate": 225, "offered_per_s": 224.0, "freshness_p50_ms": 90.0,
             "freshness_p99_ms": 140.0, "publish_to_committed_p50_ms": 1.0, "publish_to_committed_p99_ms": 2.0},
            {"label": "80% of max", "rate": 360, "offered_per_s": 350.0, "freshness_p50_ms": 200.0,
             "freshness_p99_ms": 600.0, "publish_to_committed_p50_ms": 1.0, "publish_to_committed_p99_ms": 2.0},
        ]},
        "gateway": {
            "plan": {"target_ms": 25.0}, "ingest_rate": 20.0, "threshold_ms": 170.0, "capacity_per_s": 120.0,
            "capacity_at_target_per_s": 40.0, "gateway_rss": {"peak_rss_mib": 700.0},
            "unloaded": {**phase, "name": "unloaded", "rate": 5.0, "ok_p50_ms": 10.0, "ok_p99_ms": 20.0},
            "fixed": [{**phase, "name": "text->image fixed", "rate": 100.0, "ok_p50_ms": 15.0, "ok_p99_ms": 30.0},
                      {**phase, "name": "image->image fixed", "rate": 100.0, "ok_p50_ms": 12.0, "ok_p99_ms": 24.0}],
            "overload": {**phase, "name": "overload", "rate": 240.0, "rejected_429": 900, "rejected_share": 0.37,
                         "ok_p50_ms": 20.0, "ok_p99_ms": 50.0},
        },
    }


def test_rows_mark_each_target() -> None:
    rows = {r.measure: r for r in build_rows(_run())}
    assert rows["  worker / naive"].value == "12.50x" and rows["  worker / naive"].note.endswith(": met")
    assert rows["  worker / baseline"].note.endswith("not met")  # 0.23x against 0.85x
    assert rows["freshness p50 / p99 at 200/s"].value == "80 / 240 ms"
    assert rows["freshness p50 / p99 at 200/s"].note.endswith("not met")
    assert rows["freshness p50 / p99 at 225/s = 50% of max"].note.endswith(": met")
    assert "<= 500 ms: not met" in rows["freshness p50 / p99 at 360/s = 80% of max"].note
    assert rows["gateway text->image at 100/s p50 / p99"].note.endswith("not met")
    assert rows["gateway image->image at 100/s p50 / p99"].note.endswith(": met")
    assert rows["gateway capacity, p99 <= 25 ms"].value == "40/s"
    assert rows["gateway at 2x capacity (240/s): 429 share"].value == "37%"
    assert rows["  admitted p99 / unloaded p99"].value == "2.50x"
    assert rows["peak RSS, worker"].value == "1,000 MiB"  # the larger of the two worker runs
    assert rows["peak RSS, gateway"].value == "700 MiB"
    cpu = rows["  CPU per 1k events, worker"]
    assert cpu.value == "1,500 ms" and cpu.note.startswith("worker 900, weaviate 500, kafka 100 ms")
    assert "  CPU per 1k events, baseline sink" not in rows  # not measured in this made-up run


def test_rows_without_the_optional_parts() -> None:
    run = _run()
    for part in ("naive_loop", "gateway", "worker_audio_throughput"):
        del run[part]
    measures = [r.measure for r in build_rows(run)]
    assert not any(m.startswith(("gateway", "naive", "  worker / naive")) for m in measures)
    assert "peak RSS, worker" in measures


def test_growth_rows() -> None:
    run = _run()
    run["growth"] = {"rows": [{"objects": 10_000, "compression": "rq", "batch": 1000, "fill_per_s": 4000.0,
                               "query_p50_ms": 2.0, "query_p99_ms": 5.0, "insert_to_searchable_p99_ms": 9.0}],
                     "write_floor": {"one_per_call_per_s": 300.0, "batched_per_s": 6000.0, "batch": 1000}}
    rows = {r.measure: r for r in build_rows(run)}
    assert rows["growth 10,000 objects, rq: query p50 / p99"].value == "2 / 5 ms"
    floor = rows["Weaviate writes at 512-d, one object per call"]
    assert floor.value == "300/s" and "6,000/s (20.00x)" in floor.note


def test_unit_vectors_are_unit_length() -> None:
    v = unit_vectors(np.random.default_rng(1), 5)
    assert v.shape == (5, 512) and np.allclose(np.linalg.norm(v, axis=1), 1.0)


def test_ratios() -> None:
    assert ratios(_run()) == {"worker_vs_baseline": 0.23, "worker_vs_same_vector_sink": 0.5, "worker_vs_naive": 12.5,
                              "overload_p99_vs_unloaded_p99": 2.5}


def test_freshness_rows_show_the_mean_batch_and_where_a_batch_went() -> None:
    out = _run()
    out["freshness"]["runs"][0].update(batch_mean_events=12.5, stage_mean_ms={
        "embed": 40.0, "upsert": 12.0, "queue_wait": 30.0, "total": 90.0, "dead_letter": 0.0})
    rows = {r.measure: r for r in build_rows(out)}
    assert rows["freshness p50 / p99 at 200/s"].note.endswith("mean batch 12.5 events")
    # the stages in pipeline order, the ones not run (dead letters) left out
    row = rows["  mean batch time at 200/s"]
    assert row.value == "90 ms" and row.note.startswith("queue_wait 30, embed 40, upsert 12 ms")
    assert "  mean batch time at 225/s" not in rows  # a run without the breakdown (older JSON) has no row


def test_the_video_row_gives_clips_and_segments_per_second() -> None:
    run = _run()
    run["worker_video_throughput"] = {"events": 120, "events_per_s": 21.4, "batches": 2, "segments": 240,
                                      "segments_per_s": 42.7}
    rows = {r.measure: r for r in build_rows(run)}
    row = rows["xmodal worker, videos (decode, segment, embed keyframes and sound)"]
    assert row.value == "21.4 clips/s" and "42.7 segments/s (240 segments)" in row.note


def test_the_like_for_like_sink_has_its_own_ratio_and_older_runs_still_build() -> None:
    run = _run()
    rows = {r.measure: r for r in build_rows(run)}
    assert rows["  worker / that sink"].value == "0.50x"  # 450 against 900
    assert "1.5 vectors per event (the baseline above: 1)" in rows[
        "baseline sink, the worker's vectors (texts in every text space)"].note
    assert ratios(run)["worker_vs_same_vector_sink"] == 0.5
    del run["baseline_sink_same_vectors"]  # a run from before 2026-12-03
    assert "  worker / that sink" not in {r.measure for r in build_rows(run)}
    assert ratios(run)["worker_vs_same_vector_sink"] is None
