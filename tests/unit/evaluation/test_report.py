"""The report: the text table (rows per direction and space, intervals, failures, comparison, gaps) and
the JSON document."""

from __future__ import annotations

import json
import math

import pytest

from services.evaluation.metrics import LEGEND, NAMES
from services.evaluation.report import Skipped, evaluate, render_text, report_json
from services.evaluation.runner import Answered, Failed, Hit, RerankInfo, RunResult
from services.evaluation.sets import EvalQuery, LabelledSet

SET = LabelledSet("tiny", [
    EvalQuery("t1", "text->image", {"text": "a red circle"}),
    EvalQuery("t2", "text->image", {"text": "a blue star"}),
    EvalQuery("i1", "image->text", {"image": {"data": "eA=="}}),
    EvalQuery("i2", "image->text", {"image": {"data": "eQ=="}}),
], {"t1": {"red": 1}, "t2": {"blue": 1}, "i1": {"txt-red": 1}, "i2": {"txt-blue": 1}})


def hit(qid: str, direction: str, ids: list[str], *, space: str = "clip", rerank_ms: float | None = None,
        latency: float = 12.0) -> Answered:
    rr = None if rerank_ms is None else RerankInfo("large", rerank_ms, 20, degraded=rerank_ms > 5, reason=None)
    return Answered(qid, direction, [Hit(i, 1.0 - n / 10) for n, i in enumerate(ids)], latency, 3.0, space,
                    f"builtin:{space}", rr)


def run(outcomes: list[Answered | Failed], *, rerank: bool = False, space: str | None = None) -> RunResult:
    return RunResult("http://127.0.0.1:8000", 10, rerank, space, outcomes, 0.5, 1_700_000_000.0)


RUNS = [
    run([hit("t1", "text->image", ["blue", "red"]), hit("t2", "text->image", ["blue"]),
         hit("i1", "image->text", ["txt-red"]), Failed("i2", "image->text", 400, "undecodable", "not an image")]),
    run([hit("t1", "text->image", ["red", "blue"], rerank_ms=4.0, latency=20.0),
         hit("t2", "text->image", ["blue"], rerank_ms=8.0, latency=22.0),
         hit("i1", "image->text", ["txt-red"], rerank_ms=4.0),
         Failed("i2", "image->text", 400, "undecodable", "not an image")], rerank=True),
]


def test_the_table_has_a_section_per_setting_and_a_row_per_direction() -> None:
    ev = evaluate(SET, RUNS, gateway_url="http://127.0.0.1:8000", spaces={"clip": "builtin:shapes-clip"}, k=10)
    text = render_text(ev)
    assert text.startswith("xmodal eval: set tiny (4 queries), gateway http://127.0.0.1:8000, k=10\n"
                           "models: clip=builtin:shapes-clip\n")
    lines = text.splitlines()
    assert "rerank off, the gateway's choice of space:" in lines
    assert "rerank on, the gateway's choice of space:" in lines
    header = lines[lines.index("rerank off, the gateway's choice of space:") + 1]
    assert header.split() == ["direction", "space", "n", "R@1", "R@5", "R@10", "MRR", "nDCG@10", "Rec@10", "failed",
                              "p50", "ms", "p99", "ms"]
    t2i = lines[lines.index("rerank off, the gateway's choice of space:") + 2].split()
    # t1: red at rank 2 (R@1 0, R@5 1, MRR 1/2, nDCG 1/log2(3)); t2: blue first (all 1)
    assert t2i[:5] == ["text->image", "clip", "2", "0.500", "[0.00,1.00]"]
    assert [t2i[i] for i in (5, 7, 9, 11, 13)] == ["1.000", "1.000", "0.750", f"{(1 / math.log2(3) + 1) / 2:.3f}",
                                                  "1.000"]
    assert t2i[-3:] == ["0", "12.0", "12.0"]
    i2t = lines[lines.index("rerank off, the gateway's choice of space:") + 3].split()
    assert i2t[:5] == ["image->text", "clip", "1", "1.000", "[-]"]  # one answered: no interval
    assert i2t[-3] == "1"  # the failed one
    assert "failed queries: 2 (not in the means)" in text
    assert "  i2 (image->text, clip): 400 undecodable: not an image" in text
    assert "  i2 (image->text, clip, rerank): 400 undecodable: not an image" in text


def test_the_comparison_shows_r1_before_after_and_the_added_latency() -> None:
    ev = evaluate(SET, RUNS, gateway_url="http://gw", spaces={"clip": "m"}, k=10)
    text = render_text(ev)
    assert "re-ranking (before -> after, paired delta [95% CI]; latency added, ms p50/p99):" in text
    row = next(line for line in text.splitlines() if line.startswith("  text->image   clip     0.500 -> 1.000"))
    # paired over t1 (R@1 0 -> 1, MRR 1/2 -> 1, nDCG 1/log2(3) -> 1) and t2 (unchanged); with two queries the
    # resampled means span from the smaller difference to the larger
    assert "+0.500 [0.00,1.00] +0.250 [0.00,0.50] +0.185 [0.00,0.37]" in row
    assert "6.0/8.0" in row  # the responses' rerank took_ms p50/p99 (4 and 8: p99 7.96)
    assert "+9.0/+10.0" in row  # client latency p50/p99 with (20, 22) minus without (12, 12)
    assert "modality gap (forward minus backward; 0 = no bias)" in text
    # i1 scores 1 on all; t2i: R@1 1/2, MRR 3/4, nDCG (1/log2(3) + 1) / 2 = 0.815
    assert "text->image - image->text (clip): R@1 -0.500 [-]  MRR -0.250 [-]  nDCG@10 -0.185 [-]" in text


def test_json_document(tmp_path: object) -> None:
    ev = evaluate(SET, RUNS[:1], gateway_url="http://gw", spaces={"clip": "m"}, k=10,
                  skipped=[Skipped("image->text", "clap")])
    doc = json.loads(json.dumps(report_json(ev)))
    assert doc["format"] == 1 and doc["gateway"] == {"url": "http://gw", "models": {"clip": "m"}}
    assert {"hostname", "platform", "cpus", "python"} <= set(doc["machine"])
    assert doc["set"] == {"name": "tiny", "queries": 4} and doc["k"] == 10
    assert list(doc["measures"]) == list(NAMES)
    assert doc["measures"]["R@1"] == {"ir_measures": "Success@1", "meaning": LEGEND["R@1"]}
    assert doc["measures"]["MRR"]["ir_measures"] == "RR" and doc["measures"]["Rec@10"]["ir_measures"] == "R@10"
    assert doc["runs"] == [{"rerank": False, "space": None, "queries": 4, "failed": 1, "wall_s": 0.5}]
    t2i = doc["rows"][0]
    assert (t2i["direction"], t2i["space"], t2i["queries"], t2i["failed"]) == ("text->image", "clip", 2, 0)
    assert list(t2i["measures"]) == list(NAMES)
    assert t2i["measures"]["R@1"] == {"mean": 0.5, "low": 0.0, "high": 1.0}
    assert t2i["latency_ms"] == {"p50": 12.0, "p99": 12.0} and t2i["rerank_took_ms"] is None
    assert "per_query" not in t2i
    assert doc["rows"][1]["failures"] == [{"qid": "i2", "status": 400, "code": "undecodable",
                                           "message": "not an image"}]
    assert doc["skipped"] == [{"direction": "image->text", "space": "clap", "reason": "no_space"}]
    assert doc["rerank_comparison"] == []
    assert doc["modality_gaps"][0]["difference"]["R@1"]["mean"] == -0.5
    assert doc["modality_gaps"][0]["difference"]["MRR"]["mean"] == -0.25
    full = report_json(ev, per_query=True)
    assert full["rows"][0]["per_query"]["t1"] == {"R@1": 0.0, "R@5": 1.0, "R@10": 1.0, "MRR": 0.5,
                                                  "nDCG@10": pytest.approx(1 / math.log2(3)), "Rec@10": 1.0}
    assert "not answerable (no_space), skipped: image->text in clap" in render_text(ev)


def test_one_row_per_space_when_several_answer_a_direction() -> None:
    runs = [run([hit("t1", "text->image", ["red"], space="clip")], space="clip"),
            run([hit("t1", "text->image", ["blue", "red"], space="large")], space="large")]
    text = render_text(evaluate(SET, runs, gateway_url="http://gw", spaces={"clip": "a", "large": "b"}, k=10))
    section = text.split("rerank off, each space asked for:\n")[1].splitlines()
    assert [line.split()[:4] for line in section[1:3]] == [["text->image", "clip", "1", "1.000"],
                                                          ["text->image", "large", "1", "0.000"]]
