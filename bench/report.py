"""The bench's report: the machine it ran on, ratios, target verdicts, the printed table.

Pure functions (the machine description reads /proc and a few versions), so the report's maths is tested
without a stack (tests/unit/bench/test_report.py).
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the table: what was measured, its value as printed, the target's verdict or a note."""

    measure: str
    value: str
    note: str = ""


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded to 2 places; None when either is missing or ``b`` is not positive.

    >>> ratio(450.0, 36.0), ratio(1.0, 0.0), ratio(None, 2.0)
    (12.5, None, None)
    """
    if a is None or b is None or b <= 0 or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


def verdict(value: float | None, target: float, *, at_most: bool = False) -> str:
    """"met" / "not met" for ``value`` against ``target`` (at least, or ``at_most``); "n/a" without a value.

    >>> verdict(12.0, 10.0), verdict(9.9, 10.0), verdict(140.0, 150.0, at_most=True), verdict(None, 1.0)
    ('met', 'not met', 'met', 'n/a')
    """
    if value is None or math.isnan(value):
        return "n/a"
    ok = value <= target if at_most else value >= target
    return "met" if ok else "not met"


def freshness_rates(fixed: float, max_rate: float, fractions: Sequence[float] = (0.5, 0.8)) -> list[float]:
    """The freshness runs' offered rates: ``fixed`` events/s, then each fraction of the measured maximum
    (rounded to whole events/s, at least 1).

    >>> freshness_rates(200, 455.1)
    [200, 228, 364]
    """
    return [fixed, *(max(1, round(f * max_rate)) for f in fractions)]


def fmt_ms(v: float | None) -> str:
    """Milliseconds as the table prints them.

    >>> fmt_ms(12.34), fmt_ms(1234.5), fmt_ms(None), fmt_ms(float("nan"))
    ('12 ms', '1,234 ms', '-', '-')
    """
    if v is None or math.isnan(v):
        return "-"
    return f"{v:,.0f} ms"


def fmt_ratio(v: float | None) -> str:
    """A ratio as the table prints it.

    >>> fmt_ratio(12.345), fmt_ratio(None)
    ('12.35x', '-')
    """
    return "-" if v is None else f"{v:.2f}x"


def table(rows: Sequence[Row]) -> str:
    """Rows as aligned text: a header, a rule, then one line per row (values right-aligned).

    >>> print(table([Row("a", "1/s", "note"), Row("longer", "10/s")]))
    measure  value  note
    -------  -----  ----
    a          1/s  note
    longer    10/s
    """
    head = Row("measure", "value", "note")
    all_rows = [head, *rows]
    w0 = max(len(r.measure) for r in all_rows)
    w1 = max(len(r.value) for r in all_rows)
    w2 = max(len(r.note) for r in all_rows)

    def line(r: Row) -> str:
        return f"{r.measure:<{w0}}  {r.value:>{w1}}  {r.note}".rstrip()

    rule = f"{'-' * w0}  {'-' * w1}  {'-' * w2}"
    return "\n".join([line(head), rule, *(line(r) for r in rows)])


def _first(path: Path, prefix: str, parse: Callable[[str], Any]) -> Any:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(prefix):
                return parse(line.split(":", 1)[1].strip())
    except OSError:
        return None
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Where the bench ran: cores, CPU model, memory, OS, Python and the main libraries' versions."""
    mem_kb = _first(Path("/proc/meminfo"), "MemTotal", lambda s: int(s.split()[0]))
    return {
        "host": platform.node(),
        "cores": os.cpu_count() or 0,
        "cpu_model": _first(Path("/proc/cpuinfo"), "model name", str) or platform.processor() or None,
        "ram_gib": round(mem_kb / 1024**2, 1) if mem_kb else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "weaviate_client": _version("weaviate-client"),
        "faust": _version("faust-streaming"),
    }


def describe(m: dict[str, Any]) -> str:
    """One line for the top of the table.

    >>> describe({"cores": 2, "cpu_model": "AMD EPYC", "ram_gib": 23.5, "python": "3.11.7", "torch": "2.5"})
    '2 cores (AMD EPYC), 23.5 GiB RAM, Python 3.11.7, torch 2.5'
    """
    return (f"{m['cores']} cores ({m.get('cpu_model') or 'unknown CPU'}), {m.get('ram_gib')} GiB RAM, "
            f"Python {m.get('python')}, torch {m.get('torch')}")
