"""Labelled sets: loading, every error names the file, the line and the fix, and write_set is load_set's
inverse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.evaluation.errors import LabelledSetError
from services.evaluation.sets import EvalQuery, LabelledSet, load_set, write_set

QUERIES = [
    {"qid": "t2i-1", "direction": "text->image", "request": {"text": "a red circle"}},
    {"qid": "i2t-1", "direction": "image->text", "request": {"image": {"data": "iVBORw0KGgo="}, "target": "text"}},
    {"qid": "t2a-1", "direction": "text->audio", "request": {"text": "a low hum", "filters": {"field": "n", "gt": 1}}},
]
QRELS = "t2i-1 0 img-1 1\nt2i-1 0 img-2 2\nt2i-1 0 img-3 0\n\ni2t-1 0 txt-1 1\nt2a-1\t0\tclip-1 1\n"


def write(tmp_path: Path, queries: list[str] | None = None, qrels: str = QRELS) -> Path:
    d = tmp_path / "myset"
    d.mkdir(exist_ok=True)
    lines = queries if queries is not None else [json.dumps(q) for q in QUERIES]
    (d / "queries.jsonl").write_text("\n".join(lines) + "\n")
    (d / "qrels.txt").write_text(qrels)
    return d


def test_a_set_loads_with_its_queries_qrels_and_directions(tmp_path: Path) -> None:
    s = load_set(write(tmp_path))
    assert s.name == "myset"
    assert [(q.qid, q.direction, q.target) for q in s.queries] == [
        ("t2i-1", "text->image", "image"), ("i2t-1", "image->text", "text"), ("t2a-1", "text->audio", "audio")]
    assert s.queries[2].request == {"text": "a low hum", "filters": {"field": "n", "gt": 1}}
    assert s.qrels == {"t2i-1": {"img-1": 1, "img-2": 2, "img-3": 0}, "i2t-1": {"txt-1": 1},
                       "t2a-1": {"clip-1": 1}}
    assert s.directions() == ["text->image", "image->text", "text->audio"]
    assert [q.qid for q in s.of_direction("image->text")] == ["i2t-1"]


def _error(tmp_path: Path, queries: list[str] | None = None, qrels: str = QRELS) -> str:
    with pytest.raises(LabelledSetError) as exc:
        load_set(write(tmp_path, queries, qrels))
    return str(exc.value)


def _q(**changes: object) -> str:
    return json.dumps({**QUERIES[0], **changes})


def test_bad_json_names_the_file_and_line(tmp_path: Path) -> None:
    msg = _error(tmp_path, [json.dumps(QUERIES[0]), '{"qid": "x", '])
    assert "queries.jsonl line 2: not valid JSON" in msg and "one JSON object a line" in msg


@pytest.mark.parametrize(("query", "expected"), [
    (_q(direction="text->hologram"), "unknown direction 'text->hologram'; use one of text->image, image->text"),
    (_q(direction="image->text"), "a image->text query's request holds exactly one query, 'image' (got ['text'])"),
    (_q(request={"text": "a", "image": {"data": "x"}}), "holds exactly one query, 'text' (got ['text', 'image'])"),
    (_q(request={"text": "a", "target": "text"}), "request.target 'text' contradicts direction text->image"),
    (_q(request={"text": "a", "limit": 5}), "leave request.limit out; the evaluation sets it (--k)"),
    (_q(request={"text": "a", "space": "clip"}), "leave request.space out; the evaluation sets it (--spaces)"),
    (_q(request="a red circle"), "request must be a JSON object"),
    (_q(qid=""), "qid must be a non-empty string without spaces"),
    (_q(extra=1), "unknown keys ['extra']"),
    (json.dumps({"qid": "i", "direction": "image->text", "request": {"image": "x"}}),
     'request.image must be {"data": BASE64} or {"uri": URI}'),
])
def test_a_wrong_query_says_what_to_fix(tmp_path: Path, query: str, expected: str) -> None:
    msg = _error(tmp_path, [query], "t2i-1 0 a 1\ni 0 b 1\n")
    assert "queries.jsonl line 1: " in msg
    assert expected in msg


def test_duplicate_qid_names_both_lines(tmp_path: Path) -> None:
    msg = _error(tmp_path, [json.dumps(q) for q in QUERIES] + [json.dumps(QUERIES[0])])
    assert "queries.jsonl line 4: qid 't2i-1' is already on line 1; give each query its own qid" in msg


def test_a_query_without_qrels_or_without_a_relevant_asset_is_an_error(tmp_path: Path) -> None:
    msg = _error(tmp_path, qrels="t2i-1 0 img-1 1\ni2t-1 0 txt-1 1\n")
    assert "queries.jsonl line 3: query 't2a-1' has no line in qrels.txt; add a relevant asset as " \
           "`t2a-1 0 ASSET_ID 1`" in msg
    msg = _error(tmp_path, qrels="t2i-1 0 img-1 1\ni2t-1 0 txt-1 1\nt2a-1 0 clip-1 0\n")
    assert "query 't2a-1' has only judgements of 0 in qrels.txt" in msg


@pytest.mark.parametrize(("qrels", "expected"), [
    ("t2i-1 0 img-1 1\nnope 0 img-1 1\n", "qrels.txt line 2: qid 'nope' is not a query of queries.jsonl"),
    ("t2i-1 img-1 1\n", "qrels.txt line 1: expected 4 fields `qid 0 asset_id relevance`, got 3"),
    ("t2i-1 0 img-1 yes\n", "qrels.txt line 1: relevance must be an integer (>= 1 relevant, 0 not), got 'yes'"),
    ("t2i-1 0 img-1 -1\n", "relevance must be >= 0"),
    ("t2i-1 0 img-1 1\nt2i-1 0 img-1 2\n", "qrels.txt line 2: t2i-1 already judges 'img-1'"),
])
def test_a_wrong_qrels_line_says_what_to_fix(tmp_path: Path, qrels: str, expected: str) -> None:
    assert expected in _error(tmp_path, [json.dumps(QUERIES[0])], qrels)


def test_missing_directory_files_or_queries(tmp_path: Path) -> None:
    with pytest.raises(LabelledSetError, match="no such directory; a labelled set is a directory holding"):
        load_set(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "queries.jsonl").write_text(json.dumps(QUERIES[0]) + "\n")
    with pytest.raises(LabelledSetError, match=r"half/qrels.txt: missing"):
        load_set(tmp_path / "half")
    assert "queries.jsonl: holds no query" in _error(tmp_path, ["", "  "], "")


def test_write_set_is_the_inverse_of_load_set(tmp_path: Path) -> None:
    original = load_set(write(tmp_path))
    write_set(original, tmp_path / "out" / "copy")
    again = load_set(tmp_path / "out" / "copy")
    assert (again.queries, again.qrels) == (original.queries, original.qrels)
    assert (tmp_path / "out" / "copy" / "qrels.txt").read_text().splitlines()[:2] == [
        "t2i-1 0 img-1 1", "t2i-1 0 img-2 2"]


def test_write_set_refuses_ids_qrels_cannot_hold(tmp_path: Path) -> None:
    s = LabelledSet("x", [EvalQuery("q1", "text->text", {"text": "a"})], {"q1": {"an id": 1}})
    with pytest.raises(LabelledSetError, match="use ids without spaces"):
        write_set(s, tmp_path / "x")
