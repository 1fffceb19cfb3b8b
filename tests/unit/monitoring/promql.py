"""What a dashboard's PromQL needs: the series names and label names it selects, and the series a metric
family really exposes (counters as <name>_total, histograms as <name>_bucket/_sum/_count)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana" / "dashboards" / "xmodal.json"

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
             "unless", "inf", "nan", "atan2"}
_IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "untyped": ("",),
    "info": ("_info",),
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def exprs(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) for every query of the dashboard."""
    for panel in panels(dash):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Series names an expression selects, each with the label names its matchers use.

    >>> selectors('sum by (le) (rate(x_bucket{route=~"s.*"}[5m])) / y')
    [('x_bucket', {'route'}), ('y', set())]
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals may hold anything
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(rf"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(\s*(?:{_IDENT}\s*,?\s*)*\)", "", text)
    found: list[tuple[str, set[str]]] = []
    for m in re.finditer(rf"(?<![\w.$]){_IDENT}", text):
        name, rest = m.group(), text[m.end():]
        if name in _KEYWORDS or rest.lstrip().startswith("(") or _inside_braces(text, m.start()):
            continue
        labels: set[str] = set()
        if rest.startswith("{"):
            labels = set(re.findall(rf"({_IDENT})\s*(?:=~|!~|!=|=)", rest[: rest.index("}")]))
        found.append((name, labels))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Label names in by (...) / without (...) clauses."""
    out: set[str] = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        out |= {g.strip() for g in group.split(",") if g.strip()}
    return out


def _inside_braces(text: str, pos: int) -> bool:
    return text.rfind("{", 0, pos) > text.rfind("}", 0, pos)


def exposed_series(families: Iterable[Metric], labels: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Series name -> label names, for families as prometheus_client collects or parses them.

    ``labels`` gives a family's label names where its samples cannot (a labelled metric never set yet);
    a histogram's _bucket series also has ``le``."""
    out: dict[str, set[str]] = {}
    for fam in families:
        names = set((labels or {}).get(fam.name, set()))
        for sample in fam.samples:
            names |= set(sample.labels) - {"le"}
        for suffix in _SUFFIXES[fam.type]:
            out[fam.name + suffix] = names | ({"le"} if suffix == "_bucket" else set())
    return out
