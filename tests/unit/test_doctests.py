"""The examples in docstrings run (bytewax style): documentation that cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
# streams/ imports faust, whose import-time warnings are not ours; its modules carry no examples.
PACKAGES = ("schemas", "services", "cli", "bench")
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for pkg in PACKAGES
    for p in (ROOT / pkg).rglob("*.py")
    if ">>> " in p.read_text()
)


def test_examples_were_found() -> None:
    assert {"services.ingest.collapse", "services.embedding.shapes.world", "cli.publish"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
