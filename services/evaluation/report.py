"""An evaluation's report: a plain-text table for people and a JSON document for scripts and baselines.

The table has one row per direction and answering space (``--spaces all`` gives several spaces for a
direction), one section per setting of re-ranking; each measure is its mean with the 95% confidence interval
in brackets. The columns R@1, R@5, R@10 (Success@k: share of queries with a relevant result in the top k),
MRR, nDCG@10 and Rec@10 (trec recall at 10) are those of services.evaluation.metrics, whose docstring says
what each means. Below it: the modality-bias gaps, the re-ranking comparison when the set ran both without
and with re-ranking (both on R@1, MRR and nDCG@10), and the failed queries with their error codes.

The JSON document holds the machine that ran the evaluation, the gateway's URL and the model of each space,
a ``measures`` legend (each name: the ir-measures measure that computes it and its meaning), every row's
figures keyed by those names (per-query values with ``per_query=True``), the gaps, the comparison and every
failure.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from services.evaluation.metrics import (
    NAMES,
    Estimate,
    Gap,
    Percentiles,
    RerankDelta,
    Row,
    compare_rerank,
    legend,
    modality_gaps,
    score_run,
)
from services.evaluation.runner import RunResult
from services.evaluation.sets import LabelledSet

#: The measures of the gap line and of the re-ranking comparison: the hit rate, the rank and the graded order.
# Not Rec@10: it depends on how many relevant assets each query has, which differs between directions.
COMPARED: Final = ("R@1", "MRR", "nDCG@10")
FAILURES_SHOWN: Final = 20
FORMAT_VERSION: Final = 1


@dataclass(frozen=True)
class Skipped:
    """A direction a space cannot answer (400 no_space): left out of the runs, listed in the report."""

    direction: str
    space: str


@dataclass(frozen=True)
class Evaluation:
    """Everything a report shows: what was evaluated, against what, and the scored runs."""

    set_name: str
    set_queries: int
    gateway_url: str
    spaces: dict[str, str]  # space -> model, as /readyz says
    k: int
    runs: list[RunResult]
    rows: list[Row]
    gaps: list[Gap]
    deltas: list[RerankDelta]
    skipped: list[Skipped] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def failed(self) -> int:
        return sum(len(r.failures) for r in self.rows)


def evaluate(labelled: LabelledSet, runs: Sequence[RunResult], *, gateway_url: str, spaces: dict[str, str],
             k: int, skipped: Sequence[Skipped] = ()) -> Evaluation:
    """Score ``runs`` of ``labelled`` and derive the gaps and the re-ranking comparison."""
    rows = [row for run in runs for row in score_run(run, labelled.qrels)]
    return Evaluation(labelled.name, len(labelled.queries), gateway_url, dict(spaces), k, list(runs), rows,
                      modality_gaps(rows), compare_rerank(rows), list(skipped))


# -- text ----------------------------------------------------------------------------------------------------


def fmt(e: Estimate | None, *, signed: bool = False) -> str:
    """A mean and its interval: ``0.750 [0.58,0.88]``; ``[-]`` when there is no interval.

    >>> fmt(Estimate(0.75, 0.583, 0.875)), fmt(Estimate(0.1, None, None), signed=True)
    ('0.750 [0.58,0.88]', '+0.100 [-]')
    """
    if e is None:
        return "-"
    mean = f"{e.mean:+.3f}" if signed else f"{e.mean:.3f}"
    ci = "[-]" if e.low is None or e.high is None else f"[{e.low:.2f},{e.high:.2f}]"
    return f"{mean} {ci}"


def _ms(p: Percentiles | None) -> tuple[str, str]:
    return ("-", "-") if p is None else (f"{p.p50:.1f}", f"{p.p99:.1f}")


def _space_width(rows: Sequence[Row | RerankDelta]) -> int:
    """The space column's width: 8, or the longest space name (clip_large) so the columns stay aligned."""
    return max([8, *(len(r.space) for r in rows)])


def render_rows(rows: Sequence[Row]) -> str:
    """The table of rows: direction, space, n, each measure with its CI, failed, client latency p50/p99."""
    w = _space_width(rows)
    head = (f"{'direction':<13} {'space':<{w}} {'n':>4}  " + " ".join(f"{n:<18}" for n in NAMES)
            + f" {'failed':>6} {'p50 ms':>8} {'p99 ms':>8}")
    lines = [head]
    for r in rows:
        p50, p99 = _ms(r.latency)
        cells = " ".join(f"{fmt(r.measures.get(n)):<18}" for n in NAMES)
        lines.append(f"{r.direction:<13} {r.space:<{w}} {r.n:>4}  {cells} {len(r.failures):>6} {p50:>8} {p99:>8}")
    return "\n".join(lines)


def render_gaps(gaps: Sequence[Gap]) -> str:
    lines = ["modality gap (forward minus backward; 0 = no bias), mean [95% CI]:"]
    for g in gaps:
        figures = "  ".join(f"{n} {fmt(g.measures[n], signed=True)}" for n in COMPARED)
        rerank = " rerank" if g.rerank else ""
        lines.append(f"  {g.forward} - {g.backward} ({g.space}{rerank}): {figures}")
    return "\n".join(lines)


def render_deltas(deltas: Sequence[RerankDelta]) -> str:
    w = _space_width(deltas)
    lines = ["re-ranking (before -> after, paired delta [95% CI]; latency added, ms p50/p99):",
             f"  {'direction':<13} {'space':<{w}} {'R@1 before -> after':<22} {'R@1 delta':<18} "
             f"{'MRR delta':<18} {'nDCG@10 delta':<18} {'rerank took':>12} {'client added':>14}"]
    for d in deltas:
        before, after = d.before.get("R@1"), d.after.get("R@1")
        change = f"{before.mean:.3f} -> {after.mean:.3f}" if before and after else "-"
        took = "/".join(_ms(d.rerank_took)) if d.rerank_took else "-"
        added = f"{d.added_latency.p50:+.1f}/{d.added_latency.p99:+.1f}" if d.added_latency else "-"
        cells = " ".join(f"{fmt(d.delta.get(n), signed=True):<18}" for n in COMPARED)
        lines.append(f"  {d.direction:<13} {d.space:<{w}} {change:<22} {cells} {took:>12} {added:>14}")
    return "\n".join(lines)


def render_failures(rows: Sequence[Row], *, limit: int = FAILURES_SHOWN) -> str:
    failures = [(r, f) for r in rows for f in r.failures]
    lines = [f"failed queries: {len(failures)} (not in the means)"]
    for r, f in failures[:limit]:
        rerank = ", rerank" if r.rerank else ""
        lines.append(f"  {f.qid} ({f.direction}, {r.space}{rerank}): {f.status} {f.code}: {f.message}")
    if len(failures) > limit:
        lines.append(f"  ... and {len(failures) - limit} more (all of them are in the JSON report)")
    return "\n".join(lines)


def render_text(ev: Evaluation) -> str:
    """The whole report as text."""
    models = ", ".join(f"{s}={m}" for s, m in ev.spaces.items()) or "unknown"
    out = [f"xmodal eval: set {ev.set_name} ({ev.set_queries} queries), gateway {ev.gateway_url}, k={ev.k}",
           f"models: {models}"]
    sections: dict[tuple[bool, bool], list[Row]] = {}
    for r in ev.rows:
        sections.setdefault((r.rerank, r.space_asked), []).append(r)
    for (rerank, asked), rows in sections.items():
        spaces = "each space asked for" if asked else "the gateway's choice of space"
        out += ["", f"rerank {'on' if rerank else 'off'}, {spaces}:", render_rows(rows)]
    if ev.skipped:
        out += ["", "not answerable (no_space), skipped: "
                + ", ".join(f"{s.direction} in {s.space}" for s in ev.skipped)]
    if ev.gaps:
        out += ["", render_gaps(ev.gaps)]
    if ev.deltas:
        out += ["", render_deltas(ev.deltas)]
    if ev.failed:
        out += ["", render_failures(ev.rows)]
    return "\n".join(out)


# -- JSON ----------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """The machine the evaluation ran on (the client; the gateway may run elsewhere)."""
    memory = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"hostname": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "memory_bytes": memory, "python": sys.version.split()[0]}


def report_json(ev: Evaluation, *, per_query: bool = False) -> dict[str, Any]:
    """The JSON document of an evaluation."""
    return {
        "format": FORMAT_VERSION, "created_at": ev.created_at.isoformat(), "machine": machine(),
        "gateway": {"url": ev.gateway_url, "models": ev.spaces},
        "set": {"name": ev.set_name, "queries": ev.set_queries}, "k": ev.k, "measures": legend(),
        "runs": [{"rerank": run.rerank, "space": run.space, "queries": len(run.outcomes),
                  "failed": len(run.failed), "wall_s": round(run.wall_s, 3)} for run in ev.runs],
        "rows": [row_json(r, per_query=per_query) for r in ev.rows],
        "skipped": [{"direction": s.direction, "space": s.space, "reason": "no_space"} for s in ev.skipped],
        "modality_gaps": [{"forward": g.forward, "backward": g.backward, "space": g.space, "rerank": g.rerank,
                           "difference": {n: e.to_json() for n, e in g.measures.items()}} for g in ev.gaps],
        "rerank_comparison": [_delta_json(d) for d in ev.deltas],
    }


def row_json(row: Row, *, per_query: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "direction": row.direction, "space": row.space, "space_asked": row.space_asked, "rerank": row.rerank,
        "models": row.models, "queries": row.n, "failed": len(row.failures),
        "measures": {name: e.to_json() for name, e in row.measures.items()},
        "latency_ms": _pct(row.latency), "took_ms": _pct(row.took), "rerank_took_ms": _pct(row.rerank_took),
        "rerank_degraded": row.rerank_degraded,
        "failures": [{"qid": f.qid, "status": f.status, "code": f.code, "message": f.message} for f in row.failures],
    }
    if per_query:
        out["per_query"] = row.per_query
    return out


def _delta_json(d: RerankDelta) -> dict[str, Any]:
    return {"direction": d.direction, "space": d.space,
            "before": {n: e.to_json() for n, e in d.before.items()},
            "after": {n: e.to_json() for n, e in d.after.items()},
            "delta": {n: e.to_json() for n, e in d.delta.items()},
            "rerank_took_ms": _pct(d.rerank_took), "added_latency_ms": _pct(d.added_latency)}


def _pct(p: Percentiles | None) -> dict[str, float] | None:
    return p.to_json() if p is not None else None
