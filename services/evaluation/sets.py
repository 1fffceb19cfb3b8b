"""Labelled sets: queries with known answers, as files anyone can write, read and copy.

A set is a directory with two files:

* ``queries.jsonl``: one JSON object per line,
  ``{"qid": "t2i-0001", "direction": "text->image", "request": {"text": "a red circle"}}``. ``request`` is a
  /v1/search body with exactly one of ``text``, ``image``, ``audio`` (``image``/``audio`` as ``{"data":
  base64}`` or ``{"uri": ...}``) and any other search option (``filters``, ``mode``, ...). Its query must be
  the direction's left side; ``target`` may be left out (the direction's right side is sent) but must not
  contradict it. ``limit``, ``offset``, ``rerank`` and ``space`` are chosen by the evaluation (``--k``,
  ``--rerank``, ``--spaces``), so a set leaves them out.
* ``qrels.txt``: TREC qrels, one judgement a line, whitespace separated: ``qid 0 asset_id relevance``
  (relevance an integer: >= 1 relevant, higher is more relevant for nDCG; 0 judged not relevant). Every
  query needs at least one relevant asset, and every qrels line a query of queries.jsonl.

>>> s = LabelledSet("tiny", [EvalQuery("q1", "text->image", {"text": "a red circle"})], {"q1": {"img-1": 1}})
>>> s.directions(), [q.qid for q in s.of_direction("text->image")]
(['text->image'], ['q1'])
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from services.evaluation.errors import LabelledSetError

#: Every direction a query can have, in the order reports list them: query modality -> result modality.
DIRECTIONS: Final = ("text->image", "image->text", "image->image", "text->audio", "audio->text",
                     "audio->audio", "text->text", "text->video", "image->video")
QUERIES_FILE: Final = "queries.jsonl"
QRELS_FILE: Final = "qrels.txt"
#: Request keys the evaluation sets itself, with the flag that chooses each.
RESERVED: Final = {"limit": "--k", "offset": "nothing (results are read from the top)",
                   "rerank": "--rerank", "space": "--spaces"}
_QUERY_KINDS: Final = ("text", "image", "audio")


@dataclass(frozen=True)
class EvalQuery:
    """One query of a set: its id, its direction and the /v1/search body that asks it."""

    qid: str
    direction: str
    request: dict[str, Any]

    @property
    def target(self) -> str:
        """The modality of the wanted results: the direction's right side."""
        return self.direction.split("->")[1]


@dataclass(frozen=True)
class LabelledSet:
    """Queries and their judgements: ``qrels[qid][asset_id] = relevance``."""

    name: str
    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]]

    def directions(self) -> list[str]:
        """The directions the set has queries of, in DIRECTIONS order."""
        present = {q.direction for q in self.queries}
        return [d for d in DIRECTIONS if d in present]

    def of_direction(self, direction: str) -> list[EvalQuery]:
        return [q for q in self.queries if q.direction == direction]


def load_set(directory: Path) -> LabelledSet:
    """Read a set written as described above; LabelledSetError names the file, the line and the fix."""
    if not directory.is_dir():
        raise LabelledSetError(f"{directory}: no such directory; a labelled set is a directory holding "
                               f"{QUERIES_FILE} and {QRELS_FILE} (see xmodal eval --help)")
    queries, lines = _read_queries(_need(directory / QUERIES_FILE))
    qrels = _read_qrels(_need(directory / QRELS_FILE), lines)
    for q in queries:
        judged = qrels.get(q.qid, {})
        if not any(rel >= 1 for rel in judged.values()):
            what = "only judgements of 0" if judged else "no line"
            raise LabelledSetError(
                f"{directory / QUERIES_FILE} line {lines[q.qid]}: query {q.qid!r} has {what} in {QRELS_FILE}; "
                f"add a relevant asset as `{q.qid} 0 ASSET_ID 1`, or remove the query")
    return LabelledSet(directory.name, queries, qrels)


def write_set(labelled: LabelledSet, directory: Path) -> None:
    """Write ``labelled`` as queries.jsonl + qrels.txt into ``directory`` (created); load_set reads it back."""
    for qid, judged in labelled.qrels.items():
        for asset_id in judged:
            if not asset_id or any(c.isspace() for c in qid + asset_id):
                raise LabelledSetError(f"qrels cannot hold {qid!r} / {asset_id!r}: TREC qrels fields are "
                                       "whitespace separated; use ids without spaces")
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / QUERIES_FILE).open("w", encoding="utf-8") as f:
        for q in labelled.queries:
            f.write(json.dumps({"qid": q.qid, "direction": q.direction, "request": q.request},
                               ensure_ascii=False) + "\n")
    with (directory / QRELS_FILE).open("w", encoding="utf-8") as f:
        for q in labelled.queries:
            for asset_id, rel in labelled.qrels.get(q.qid, {}).items():
                f.write(f"{q.qid} 0 {asset_id} {rel}\n")


def _need(path: Path) -> Path:
    if not path.is_file():
        raise LabelledSetError(f"{path}: missing; a labelled set holds {QUERIES_FILE} and {QRELS_FILE} "
                               "(see xmodal eval --help for their format)")
    return path


def _read_queries(path: Path) -> tuple[list[EvalQuery], dict[str, int]]:
    queries: list[EvalQuery] = []
    lines: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            q = _parse_query(line, f"{path} line {n}")
            if q.qid in lines:
                raise LabelledSetError(f"{path} line {n}: qid {q.qid!r} is already on line {lines[q.qid]}; "
                                       "give each query its own qid")
            lines[q.qid] = n
            queries.append(q)
    if not queries:
        raise LabelledSetError(f"{path}: holds no query; write one JSON object a line, e.g. "
                               '{"qid": "t2i-0001", "direction": "text->image", "request": {"text": "a red circle"}}')
    return queries, lines


def _parse_query(line: str, where: str) -> EvalQuery:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LabelledSetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); "
                               "write one JSON object a line") from None
    if not isinstance(obj, dict):
        raise LabelledSetError(f"{where}: a query is a JSON object with qid, direction and request")
    qid, direction, request = obj.get("qid"), obj.get("direction"), obj.get("request")
    extra = sorted(set(obj) - {"qid", "direction", "request"})
    if extra:
        raise LabelledSetError(f"{where}: unknown keys {extra}; a query has only qid, direction and request")
    if not isinstance(qid, str) or not qid or any(c.isspace() for c in qid):
        raise LabelledSetError(f"{where}: qid must be a non-empty string without spaces (got {qid!r})")
    if direction not in DIRECTIONS:
        raise LabelledSetError(f"{where}: unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
    if not isinstance(request, dict):
        raise LabelledSetError(f"{where}: request must be a JSON object, a /v1/search body such as "
                               '{"text": "a red circle"}')
    _check_request(request, str(direction), where)
    return EvalQuery(qid, str(direction), request)


def _check_request(request: Mapping[str, Any], direction: str, where: str) -> None:
    source, target = direction.split("->")
    given = [k for k in (*_QUERY_KINDS, "asset_id") if request.get(k) is not None]
    if given != [source]:
        raise LabelledSetError(f"{where}: a {direction} query's request holds exactly one query, {source!r} "
                               f"(got {given or 'none'})")
    value = request[source]
    if source == "text" and not (isinstance(value, str) and value.strip()):
        raise LabelledSetError(f"{where}: request.text must be a non-empty string")
    if source != "text" and not (isinstance(value, dict) and len(value) == 1 and
                                 isinstance(value.get("data", value.get("uri")), str)):
        raise LabelledSetError(f"{where}: request.{source} must be {{\"data\": BASE64}} or {{\"uri\": URI}}")
    if request.get("target", target) != target:
        raise LabelledSetError(f"{where}: request.target {request['target']!r} contradicts direction "
                               f"{direction}; leave target out or set it to {target!r}")
    for key, flag in RESERVED.items():
        if key in request:
            raise LabelledSetError(f"{where}: leave request.{key} out; the evaluation sets it ({flag})")


def _read_qrels(path: Path, known: Mapping[str, int]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path} line {n}"
            if len(fields) != 4:
                raise LabelledSetError(f"{where}: expected 4 fields `qid 0 asset_id relevance`, got "
                                       f"{len(fields)}: {line.strip()!r}")
            qid, _, asset_id, rel_text = fields
            try:
                rel = int(rel_text)
            except ValueError:
                raise LabelledSetError(f"{where}: relevance must be an integer (>= 1 relevant, 0 not), "
                                       f"got {rel_text!r}") from None
            if rel < 0:
                raise LabelledSetError(f"{where}: relevance must be >= 0 (0 = judged not relevant), got {rel}")
            if qid not in known:
                raise LabelledSetError(f"{where}: qid {qid!r} is not a query of {QUERIES_FILE}; "
                                       "fix the qid or remove the line")
            judged = qrels.setdefault(qid, {})
            if asset_id in judged:
                raise LabelledSetError(f"{where}: {qid} already judges {asset_id!r}; keep one line per "
                                       "query and asset")
            judged[asset_id] = rel
    return qrels
