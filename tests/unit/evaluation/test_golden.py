"""Golden files: loading and its errors (naming the entry and the key), each predicate, and check_golden over a
search callable (failures, errors and timeouts as reasons). No network: the searches here are functions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from services.errors import ConfigError
from services.evaluation.golden import (
    DEMO_GOLDEN_FILE,
    GoldenFailure,
    GoldenFileError,
    GoldenQuery,
    GoldenSearchError,
    check_golden,
    failure_reason,
    load_golden,
    parse_golden,
)

Body = dict[str, Any]


def one(expect: str, request: str = "{text: a red circle}") -> GoldenQuery:
    [golden] = parse_golden(f"- name: q\n  request: {request}\n  expect: {expect}\n")
    return golden


def response(*results: tuple[str, dict[str, Any]]) -> Body:
    return {"results": [{"asset_id": i, "score": 1.0, "modality": "image", "metadata": m} for i, m in results],
            "model": "m", "space": "clip", "took_ms": 1.0}


RED_CIRCLE = {"color": "red", "shape": "circle"}
RED_STAR = {"color": "red", "shape": "star"}
BLUE_CIRCLE = {"color": "blue", "shape": "circle"}
THREE = response(("a", RED_CIRCLE), ("b", RED_STAR), ("c", BLUE_CIRCLE))


# --- loading ---------------------------------------------------------------------------------------------


def test_load_reads_every_entry_in_order(tmp_path: Path) -> None:
    path = tmp_path / "golden.yaml"
    path.write_text("""
- name: red circles
  request: {text: a photo of a red circle, target: image, limit: 3, filters: {field: shape, eq: circle}}
  expect:
    top_all: {k: 3, metadata: {color: red}}
    min_results: 3
- name: own text
  request: {text: a photo of a green triangle, target: text}
  expect: {top1: text-green-triangle, ids_in_top: {k: 2, ids: [text-green-triangle]}}
""")
    goldens = load_golden(path)
    assert [g.name for g in goldens] == ["red circles", "own text"]
    assert goldens[0].request["filters"] == {"field": "shape", "eq": "circle"}
    assert goldens[0].expect.top_all is not None and goldens[0].expect.top_all.metadata == {"color": "red"}
    assert goldens[0].expect.min_results == 3 and goldens[0].expect.top1 is None
    assert goldens[1].expect.ids_in_top is not None and goldens[1].expect.ids_in_top.ids == ["text-green-triangle"]


@pytest.mark.parametrize(("text", "wanted"), [
    ("- name: typo\n  request: {text: x}\n  expect: {top_alll: {k: 3, metadata: {color: red}}}",
     "entry 1 ('typo'): unknown key 'expect.top_alll' (known here: ids_in_top, top_all, top_any, min_results, "
     "top1, top1_at)"),
    ("- name: deep\n  request: {text: x}\n  expect: {top_all: {k: 3, metadata: {color: red}, n: 1}}",
     "entry 1 ('deep'): unknown key 'expect.top_all.n' (known here: k, metadata)"),
    ("- name: ok\n  request: {text: x}\n  expect: {top1: a}\n- name: top\n  request: {text: x}\n  expect: {top1: a}"
     "\n  expected: {}", "entry 2 ('top'): unknown key 'expected' (known here: name, request, expect)"),
    ("- name: none\n  request: {text: x}\n  expect: {}", "entry 1 ('none'): expect: Value error, give at least one"),
    ("- request: {text: x}\n  expect: {top1: a}", "entry 1: missing key 'name'"),
    ("- name: k\n  request: {text: x}\n  expect: {ids_in_top: {k: 0, ids: [a]}}", "expect.ids_in_top.k: Input"),
    ("- name: ids\n  request: {text: x}\n  expect: {ids_in_top: {k: 3, ids: []}}", "expect.ids_in_top.ids:"),
    ("- name: a\n  request: {text: x}\n  expect: {top1: a}\n- name: a\n  request: {text: y}\n  expect: {top1: b}",
     "entry 2 ('a'): the name 'a' is used twice"),
    ("- just a string", "entry 1: an entry is a mapping"),
    ("- name: yaml\n  request: {text: x}\n  expect: {top_all: {k: 1, metadata: {on: 1}}}",
     "entry 1 ('yaml'): expect.top_all.metadata: every key must be a string; YAML reads an unquoted on"),
    ("name: not a list", "a golden file is a non-empty YAML list"),
    ("", "a golden file is a non-empty YAML list"),
    ("- name: [unclosed", "not valid YAML"),
])
def test_errors_name_the_entry_and_the_key(text: str, wanted: str) -> None:
    with pytest.raises(GoldenFileError) as info:
        parse_golden(text, source="g.yaml")
    assert str(info.value).startswith("g.yaml")
    assert wanted in str(info.value)


def test_a_missing_file_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the golden file .*nope\.yaml.*XMODAL_GOLDEN_FILE"):
        load_golden(tmp_path / "nope.yaml")


def test_the_demo_file_loads() -> None:
    goldens = load_golden(DEMO_GOLDEN_FILE)
    assert len(goldens) >= 5
    assert all(g.request.get("target") in ("image", "text", "audio", "video") for g in goldens)


# --- predicates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expect", "reason"), [
    ("{top1: a}", None),
    ("{top1: b}", "top1: 'a' came first, not 'b'"),
    ("{ids_in_top: {k: 2, ids: [b, a]}}", None),
    ("{ids_in_top: {k: 2, ids: [a, c, z]}}", "ids_in_top: c, z not in the top 2 (top 2: a, b)"),
    ("{top_all: {k: 2, metadata: {color: red}}}", None),
    ("{top_all: {k: 3, metadata: {color: red}}}", "top_all: result 3 of 3 (c) has color='blue', not 'red'"),
    ("{top_all: {k: 4, metadata: {color: red}}}", "top_all: 3 results, 4 wanted"),
    ("{top_all: {k: 1, metadata: {size: large}}}", "top_all: result 1 of 1 (a) has no size, not 'large'"),
    ("{top_any: {k: 3, metadata: {color: blue, shape: circle}}}", None),
    ("{top_any: {k: 2, metadata: {color: blue}}}", "top_any: none of the top 2 has color='blue' (top 2: a, b)"),
    ("{min_results: 3}", None),
    ("{min_results: 4}", "min_results: 3 results, at least 4 wanted"),
    ("{min_results: 4, top1: b}", "min_results: 3 results, at least 4 wanted; top1: 'a' came first, not 'b'"),
])
def test_predicates(expect: str, reason: str | None) -> None:
    assert failure_reason(one(expect), THREE) == reason


def test_an_empty_answer_fails_every_predicate_but_min_results_0() -> None:
    empty = response()
    assert failure_reason(one("{top1: a}"), empty) == "top1: no results, 'a' wanted first"
    assert failure_reason(one("{ids_in_top: {k: 1, ids: [a]}}"), empty) == \
        "ids_in_top: a not in the top 1 (top 1: no results)"
    assert failure_reason(one("{top_all: {k: 1, metadata: {color: red}}}"), empty) == "top_all: 0 results, 1 wanted"
    assert failure_reason(one("{top_any: {k: 1, metadata: {color: red}}}"), empty) is not None
    assert failure_reason(one("{min_results: 0}"), empty) is None


def test_metadata_values_match_by_type_and_list_membership() -> None:
    answer = response(("a", {"tags": ["round", "red"], "n": 3, "lit": True, "w": 1.5}))
    assert failure_reason(one("{top_all: {k: 1, metadata: {tags: red, n: 3, lit: true, w: 1.5}}}"), answer) is None
    assert failure_reason(one("{top_all: {k: 1, metadata: {tags: blue}}}"), answer) is not None
    assert failure_reason(one("{top_all: {k: 1, metadata: {lit: 1}}}"), answer) is not None  # a bool is no number
    assert failure_reason(one("{top_all: {k: 1, metadata: {n: '3'}}}"), answer) is not None  # nor a string


def test_a_response_without_results_fails() -> None:
    assert failure_reason(one("{min_results: 0}"), {"error": "x"}) == "the response has no `results` list"
    assert failure_reason(one("{min_results: 0}"), {"results": ["a"]}) == "the response has no `results` list"


def test_long_id_lists_are_cut_in_reasons() -> None:
    answer = response(*((f"id{i}", {}) for i in range(9)))
    reason = failure_reason(one("{ids_in_top: {k: 9, ids: [z]}}"), answer)
    assert reason == "ids_in_top: z not in the top 9 (top 9: id0, id1, id2, id3, id4, … (4 more))"


# --- checking ----------------------------------------------------------------------------------------------


GOLDENS = parse_golden("""
- name: red first
  request: {text: a red circle, limit: 3}
  expect: {top1: a}
- name: blue first
  request: {text: a blue circle, limit: 3}
  expect: {top1: c}
- name: broken
  request: {text: boom}
  expect: {min_results: 1}
""")


async def test_check_golden_reports_passes_failures_and_errors() -> None:
    seen: list[Body] = []

    async def search(body: Body) -> Body:
        seen.append(body)
        if body["text"] == "boom":
            raise GoldenSearchError("HTTP 503 from http://gw/v1/search: unavailable: Weaviate is down")
        return THREE

    report = await check_golden(GOLDENS, search)
    assert seen == [g.request for g in GOLDENS]  # each request as written, one at a time, in file order
    assert report.passed == 1 and report.names == ["red first", "blue first", "broken"]
    assert report.failed == [
        GoldenFailure("blue first", "top1: 'a' came first, not 'c'"),
        GoldenFailure("broken", "search failed: HTTP 503 from http://gw/v1/search: unavailable: Weaviate is down"),
    ]
    assert report.ratio == pytest.approx(1 / 3) and not report.ok
    assert report.checked_at.tzinfo is not None and report.took_ms >= 0
    as_json = report.as_json()
    assert as_json["total"] == 3 and as_json["failed"][1]["name"] == "broken"
    assert as_json["checked_at"] == report.checked_at.timestamp()


async def test_unexpected_errors_and_timeouts_are_failures_too() -> None:
    async def search(body: Body) -> Body:
        if body["text"] == "boom":
            raise KeyError("results")
        await asyncio.sleep(10)
        return THREE

    report = await check_golden(GOLDENS, search, timeout_s=0.05)
    assert [f.reason for f in report.failed] == ["search timed out after 0.05 s"] * 2 + ["search failed: KeyError: "
                                                                                          "'results'"]
    assert report.passed == 0 and report.ratio == 0.0


async def test_all_passing_is_ok() -> None:
    async def search(body: Body) -> Body:
        return THREE

    report = await check_golden(GOLDENS[:1], search)
    assert report.ok and report.ratio == 1.0 and report.failed == []


def test_top1_at_checks_the_first_videos_time_code() -> None:
    from services.evaluation.golden import failure_reason, parse_golden

    [golden] = parse_golden("""
- name: turns blue
  request: {text: a photo of a blue circle, target: video}
  expect:
    top1_at: {from_s: 2.0, to_s: 2.5}
""")
    assert failure_reason(golden, {"results": [{"asset_id": "v", "start_s": 2.0}]}) is None
    assert "1.5 s, not within 2-2.5 s" in str(failure_reason(golden, {"results": [{"asset_id": "v", "start_s": 1.5}]}))
    assert "no time code" in str(failure_reason(golden, {"results": [{"asset_id": "img"}]}))


async def test_a_failed_scheduled_run_is_checked_again_soon_not_an_interval_later(tmp_path: Path) -> None:
    from services.gateway.golden import RECHECK_FAILED_S, GoldenSchedule

    indexed = asyncio.Event()  # the catalogue is still being indexed when the gateway starts

    async def search(request: dict[str, Any]) -> Body:
        return THREE if indexed.is_set() else response()

    schedule = GoldenSchedule([one("{top1: a}")], search, interval_s=3600.0, source=tmp_path / "g.yaml")
    await schedule.start()
    try:
        first = await asyncio.wait_for(schedule.wait_runs(1), timeout=30)
        assert not first.ok
        indexed.set()
        second = await asyncio.wait_for(schedule.wait_runs(2), timeout=RECHECK_FAILED_S + 30)  # not 3600 s
        assert second.ok and schedule.runs == 2
    finally:
        await schedule.stop()
