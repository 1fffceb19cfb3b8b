"""Golden queries: a few searches whose answers must stay true, checked on a schedule and before a deploy.

A golden file is YAML: a list of entries, each a ``name``, a ``request`` (a /v1/search body, as sent) and an
``expect`` with one or more predicates over the response's results, all of which must hold:

- ``ids_in_top: {k: 3, ids: [a, b]}``: each of these asset ids is within the top k;
- ``top_all: {k: 3, metadata: {color: red}}``: each of the top k has these metadata values (and there are k);
- ``top_any: {k: 3, metadata: {color: red}}``: at least one of the top k has them;
- ``min_results: n``: at least n results;
- ``top1: id``: this asset id comes first.
- ``top1_at: {from_s: 2.0, to_s: 3.0}``: the first result is a video whose best-matching moment (its
  ``start_s``) lies within these seconds, both included.

A metadata value matches when it is equal, or when the stored value is a list holding it (as the store's
``eq`` filter does). Unknown keys are an error naming the entry and the key: a typo must not turn a check off.

>>> goldens = parse_golden('''
... - name: red circles
...   request: {text: a photo of a red circle, target: image, limit: 3}
...   expect:
...     top_all: {k: 2, metadata: {color: red}}
...     top1: shape-red-circle-0001
... ''')
>>> response = {"results": [{"asset_id": "shape-red-circle-0001", "metadata": {"color": "red"}},
...                         {"asset_id": "shape-red-star-0007", "metadata": {"color": "blue"}}]}
>>> print(failure_reason(goldens[0], response))
top_all: result 2 of 2 (shape-red-star-0007) has color='blue', not 'red'

``check_golden`` runs them through any search callable: the gateway's own Searcher in-process (the
gateway's schedule, services.gateway.golden), or HTTP against a running gateway
(services.evaluation.client.GatewayClient.search, as ``xmodal eval --golden`` does). A search that raises is
a failure with the error as its reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.errors import ConfigError, XmodalError

#: A search: a /v1/search request body in, the response JSON out (or an exception).
Search = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
#: A metadata value a predicate asks for (the store's scalars; a list-valued field matches by membership).
Wanted = str | bool | int | float
#: The shipped golden file of the demo catalogue (`xmodal demo` starts the gateway with it).
DEMO_GOLDEN_FILE = Path(__file__).with_name("golden_demo.yaml")
#: Longest a single golden search may take before it counts as failed.
SEARCH_TIMEOUT_S = 30.0

_FORBID = ConfigDict(extra="forbid", frozen=True)
_MAX_SHOWN = 5  # result ids quoted in a failure reason


class GoldenFileError(ConfigError):
    """A golden file that cannot be read or is not valid; the message names the file, entry and key."""


class GoldenSearchError(XmodalError):
    """A golden search that could not be answered (e.g. past its deadline)."""


class IdsInTop(BaseModel):
    model_config = _FORBID
    k: int = Field(ge=1, le=100)
    ids: Annotated[list[str], Field(min_length=1)]


class TopMetadata(BaseModel):
    model_config = _FORBID
    k: int = Field(ge=1, le=100)
    metadata: Annotated[dict[str, Wanted], Field(min_length=1)]


class TimeSpan(BaseModel):
    model_config = _FORBID
    from_s: float = Field(ge=0)
    to_s: float = Field(ge=0)


class Expect(BaseModel):
    """The predicates of one golden query; every one given must hold."""

    model_config = _FORBID
    ids_in_top: IdsInTop | None = None
    top_all: TopMetadata | None = None
    top_any: TopMetadata | None = None
    min_results: int | None = Field(None, ge=0)
    top1: str | None = Field(None, min_length=1)
    top1_at: TimeSpan | None = None

    @model_validator(mode="after")
    def _something(self) -> Expect:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        return self


class GoldenQuery(BaseModel):
    """One golden query: a name (unique in its file; the metric's label), a search request, expectations."""

    model_config = _FORBID
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    request: dict[str, Any]
    expect: Expect


@dataclass(frozen=True)
class GoldenFailure:
    name: str
    reason: str


@dataclass(frozen=True)
class GoldenReport:
    """One run over a golden file. ``ratio`` is passed / checked (1.0 when nothing was checked)."""

    passed: int
    failed: list[GoldenFailure]
    ratio: float
    checked_at: datetime
    took_ms: float
    names: list[str] = field(default_factory=list)  # every golden query checked, in file order

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "passed": self.passed, "total": self.passed + len(self.failed),
                "ratio": self.ratio, "checked_at": self.checked_at.timestamp(), "took_ms": self.took_ms,
                "failed": [{"name": f.name, "reason": f.reason} for f in self.failed]}


# --- loading ---------------------------------------------------------------------------------------------


def load_golden(path: Path | str) -> list[GoldenQuery]:
    """The golden queries of a YAML file; GoldenFileError (a ConfigError) says what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GoldenFileError(f"cannot read the golden file {path}: {exc.strerror or exc}; point "
                              "XMODAL_GOLDEN_FILE (or --golden) at a YAML file of golden queries") from None
    return parse_golden(text, source=str(path))


def parse_golden(text: str, *, source: str = "<golden>") -> list[GoldenQuery]:
    """The golden queries of a YAML document (see the module's docstring for the format)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GoldenFileError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, list) or not data:
        raise GoldenFileError(f"{source}: a golden file is a non-empty YAML list of entries, each with name, "
                              "request and expect")
    goldens: list[GoldenQuery] = []
    seen: set[str] = set()
    for i, entry in enumerate(data, start=1):
        where = _where(source, i, entry)
        if not isinstance(entry, dict):
            raise GoldenFileError(f"{where}: an entry is a mapping with name, request and expect")
        try:
            golden = GoldenQuery.model_validate(entry)
        except ValidationError as exc:
            raise GoldenFileError(f"{where}: {_problem(exc)}") from None
        if golden.name in seen:
            raise GoldenFileError(f"{where}: the name {golden.name!r} is used twice; names must be unique")
        seen.add(golden.name)
        goldens.append(golden)
    return goldens


def _where(source: str, i: int, entry: object) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"{source}, entry {i}" + (f" ({name!r})" if isinstance(name, str) else "")


def _known(loc: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = GoldenQuery
    for part in loc[:-1]:
        if part == "expect":
            model = Expect
        elif part == "ids_in_top":
            model = IdsInTop
        elif part in ("top_all", "top_any"):
            model = TopMetadata
        elif part == "top1_at":
            model = TimeSpan
    return list(model.model_fields)


def _problem(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc) or "entry"
    if first["type"] == "extra_forbidden":
        return f"unknown key {key!r} (known here: {', '.join(_known(loc))})"
    if first["type"] == "missing":
        return f"missing key {key!r}"
    if loc and loc[-1] == "[key]":  # YAML 1.1 reads on/off/yes/no as booleans, even as keys
        return (f"{key.rsplit('.', 2)[0]}: every key must be a string; YAML reads an unquoted on, off, yes, no, "
                "true, false or number as a boolean or a number: quote it")
    return f"{key}: {first['msg']}"


# --- predicates -------------------------------------------------------------------------------------------


def failure_reason(golden: GoldenQuery, response: dict[str, Any]) -> str | None:
    """Why ``response`` does not meet the golden query's expectations (None: it does)."""
    results = response.get("results")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        return "the response has no `results` list"
    e = golden.expect
    reasons = [r for r in (
        _min_results(e.min_results, results) if e.min_results is not None else None,
        _top1(e.top1, results) if e.top1 is not None else None,
        _ids_in_top(e.ids_in_top, results) if e.ids_in_top is not None else None,
        _top_all(e.top_all, results) if e.top_all is not None else None,
        _top_any(e.top_any, results) if e.top_any is not None else None,
        _top1_at(e.top1_at, results) if e.top1_at is not None else None,
    ) if r is not None]
    return "; ".join(reasons) or None


def _ids(results: list[dict[str, Any]], k: int) -> list[str]:
    return [str(r.get("asset_id")) for r in results[:k]]


def _shown(ids: list[str]) -> str:
    more = f", … ({len(ids) - _MAX_SHOWN} more)" if len(ids) > _MAX_SHOWN else ""
    return ", ".join(ids[:_MAX_SHOWN]) + more if ids else "no results"


def _matches(stored: object, wanted: Wanted) -> bool:
    if isinstance(stored, list):
        return any(_same(s, wanted) for s in stored)
    return _same(stored, wanted)


def _same(stored: object, wanted: Wanted) -> bool:
    # bool is an int in Python: True must not match 1
    return stored == wanted and isinstance(stored, bool) == isinstance(wanted, bool)


def _mismatch(result: dict[str, Any], wanted: dict[str, Wanted]) -> str | None:
    """The first wanted key whose value the result lacks, as ``key='stored', not 'wanted'``."""
    metadata = result.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    for key, value in wanted.items():
        if key not in metadata:
            return f"no {key}, not {value!r}"
        if not _matches(metadata[key], value):
            return f"{key}={metadata[key]!r}, not {value!r}"
    return None


def _min_results(n: int, results: list[dict[str, Any]]) -> str | None:
    return None if len(results) >= n else f"min_results: {len(results)} results, at least {n} wanted"


def _top1(wanted: str, results: list[dict[str, Any]]) -> str | None:
    if not results:
        return f"top1: no results, {wanted!r} wanted first"
    first = str(results[0].get("asset_id"))
    return None if first == wanted else f"top1: {first!r} came first, not {wanted!r}"


def _top1_at(span: TimeSpan, results: list[dict[str, Any]]) -> str | None:
    if not results:
        return "top1_at: no results"
    start = results[0].get("start_s")
    if not isinstance(start, int | float):
        return f"top1_at: the first result ({results[0].get('asset_id')!r}) has no time code (not a video)"
    if span.from_s <= start <= span.to_s:
        return None
    return f"top1_at: the first result's best moment is {start:g} s, not within {span.from_s:g}-{span.to_s:g} s"


def _ids_in_top(p: IdsInTop, results: list[dict[str, Any]]) -> str | None:
    top = _ids(results, p.k)
    missing = [i for i in p.ids if i not in top]
    if not missing:
        return None
    return f"ids_in_top: {', '.join(missing)} not in the top {p.k} (top {p.k}: {_shown(top)})"


def _top_all(p: TopMetadata, results: list[dict[str, Any]]) -> str | None:
    top = results[: p.k]
    if len(top) < p.k:
        return f"top_all: {len(top)} results, {p.k} wanted"
    for i, result in enumerate(top, start=1):
        why = _mismatch(result, p.metadata)
        if why is not None:
            return f"top_all: result {i} of {p.k} ({result.get('asset_id')}) has {why}"
    return None


def _top_any(p: TopMetadata, results: list[dict[str, Any]]) -> str | None:
    top = results[: p.k]
    if any(_mismatch(r, p.metadata) is None for r in top):
        return None
    wanted = " ".join(f"{k}={v!r}" for k, v in p.metadata.items())
    return f"top_any: none of the top {p.k} has {wanted} (top {p.k}: {_shown(_ids(results, p.k))})"


# --- checking ---------------------------------------------------------------------------------------------


async def check_golden(goldens: Sequence[GoldenQuery], search: Search, *,
                       timeout_s: float | None = SEARCH_TIMEOUT_S) -> GoldenReport:
    """Run every golden query through ``search`` (one at a time: gentle on the gateway) and report.

    A search that raises (or takes longer than ``timeout_s``) is a failure with the error as its reason.
    """
    started = time.perf_counter()
    failed: list[GoldenFailure] = []
    for golden in goldens:
        reason = await _check_one(golden, search, timeout_s)
        if reason is not None:
            failed.append(GoldenFailure(golden.name, reason))
    total = len(goldens)
    passed = total - len(failed)
    return GoldenReport(
        passed=passed, failed=failed, ratio=passed / total if total else 1.0, checked_at=datetime.now(UTC),
        took_ms=round((time.perf_counter() - started) * 1000, 2), names=[g.name for g in goldens],
    )


async def _check_one(golden: GoldenQuery, search: Search, timeout_s: float | None) -> str | None:
    try:
        async with asyncio.timeout(timeout_s):
            response = await search(dict(golden.request))
    except TimeoutError:
        return f"search timed out after {timeout_s:g} s"
    except Exception as exc:  # noqa: BLE001 - errors as data: the failure carries the error, nothing is lost
        return f"search failed: {_describe(exc)}"
    return failure_reason(golden, response)


def _describe(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, XmodalError) and text:
        return text  # ours say what happened and what to do
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
