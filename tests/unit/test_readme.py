"""The README says what the code does: its settings table, make targets, commands and paths are checked here.

A README that drifts from the code is a bug; these tests name the line to fix.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from cli.main import build_parser
from services.config import GatewaySettings, ModelSettings, StackSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
DEPLOYABLES = (WorkerSettings, GatewaySettings, StackSettings)
#: environment variables the README may name that are not settings (read by the tests, not by xmodal)
NOT_SETTINGS = frozenset({"XMODAL_SCREENSHOT_DIR"})
#: paths the README names that are made by running something, with the file that makes them
GENERATED = {"bench/results/latest.json": "bench/run.py"}


def setting_default(var: str) -> Any:
    """The default of XMODAL_A__B in the first deployable that has it; KeyError when none does."""
    parts = var.removeprefix("XMODAL_").lower().split("__")
    for cls in DEPLOYABLES:
        fields = cls.model_fields
        if parts[0] not in fields:
            continue
        field = fields[parts[0]]
        value = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        for name in parts[1:]:
            if isinstance(value, dict) and name in value:  # a section of a dict, e.g. XMODAL_SPACES__CLIP
                value = value[name]
            elif isinstance(value, BaseModel) and name in type(value).model_fields:
                value = getattr(value, name)
            else:
                break
        else:
            return value
    raise KeyError(var)


def render(value: Any) -> str:
    if isinstance(value, list):
        return json.dumps([str(v) for v in value])
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def settings_rows() -> list[tuple[str, str]]:
    """(variable, default as written) for each variable of the README's settings table."""
    rows = []
    for line in README.splitlines():
        if not line.startswith("| `XMODAL_"):
            continue
        names_cell, defaults_cell = line.split("|")[1:3]
        names = re.findall(r"`([A-Z_]+)`", names_cell)
        defaults = re.findall(r"`([^`]*)`", defaults_cell)
        assert len(names) == len(defaults), f"README settings row: {len(names)} names, {len(defaults)} defaults: {line}"
        for name, default in zip(names, defaults, strict=True):
            # `XMODAL_KAFKA__TOPIC` / `__DLQ_TOPIC`: the shorthand keeps the first name's section
            full = names[0].rsplit("__", 1)[0] + name if name.startswith("__") else name
            rows.append((full, default))
    return rows


def test_settings_table_names_real_settings_with_their_defaults() -> None:
    rows = settings_rows()
    assert len(rows) >= 15, "the README's settings table is missing"
    for var, written in rows:
        try:
            default = setting_default(var)
        except KeyError:
            pytest.fail(f"README names {var}, which no settings class in services/config.py has")
        assert render(default) == written, f"README says {var} defaults to {written!r}; the code says {default!r}"


def test_every_variable_the_readme_names_is_a_setting() -> None:
    for var in set(re.findall(r"\bXMODAL_[A-Z0-9_]*[A-Z0-9]\b", README)) - NOT_SETTINGS:
        if (added := re.fullmatch(r"XMODAL_SPACES__[A-Z0-9_]+__([A-Z0-9_]+)", var)) is not None:
            # a space of another name adds a space: its field must be a field of a space
            assert added[1].lower() in ModelSettings.model_fields, f"README names {var}: no space has that field"
            continue
        try:
            setting_default(var)
        except KeyError:
            pytest.fail(f"README names {var}, which no settings class in services/config.py has")


def test_make_targets_table_is_the_makefile() -> None:
    makefile = re.findall(r"^([a-z-]+):.*?## (.*)$", MAKEFILE, re.M)
    readme = re.findall(r"^\| `make ([a-z-]+)` \| (.*) \|$", README, re.M)
    assert readme == makefile, "README's make table differs from the Makefile's `##` help lines"
    targets = {t for t, _ in makefile}
    for used in re.findall(r"`make ([a-z][a-z-]*)", README) + re.findall(r"^make ([a-z][a-z-]*)", README, re.M):
        assert used in targets, f"README mentions `make {used}`, which the Makefile does not have"


def test_commands_table_is_the_cli() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cli = [(a.dest, a.help) for a in sub._choices_actions]
    readme = re.findall(r"^\| `\./xmodal ([a-z-]+)` \| (.*) \|$", README, re.M)
    assert readme == cli, "README's command table differs from the CLI's subcommands and their help"


def readme_invocations() -> list[str]:
    """Every `./xmodal ...` the README shows, in code blocks or inline (not the command table), no comments."""
    prose = "\n".join(line for line in README.splitlines() if not line.startswith("| `./xmodal"))
    found = re.findall(r"^\./xmodal ([^#\n]*)", prose, re.M) + re.findall(r"`\./xmodal ([^`]*)`", prose)
    return [f.strip() for f in found if f.strip()]


def test_every_command_line_in_the_readme_parses(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    invocations = readme_invocations()
    assert len(invocations) >= 5
    for line in invocations:
        try:
            parser.parse_args(shlex.split(line))
        except SystemExit as exc:  # --help exits 0 after printing
            if exc.code == 0:
                continue
            pytest.fail(f"README shows `./xmodal {line}`, which the CLI does not accept")


def test_paths_the_readme_names_exist() -> None:
    tops = "schemas|services|streams|cli|tests|bench|deploy|docs|scripts"
    named = set(re.findall(rf"`((?:{tops})/[\w./-]*)`", README)) | set(re.findall(rf"\]\(((?:{tops})/[^)]+)\)", README))
    assert len(named) >= 10
    for path in sorted(named):
        if path in GENERATED:
            assert Path(path).name in (ROOT / GENERATED[path]).read_text(), f"{GENERATED[path]} no longer writes {path}"
            continue
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"


def test_metrics_the_readme_names_are_exported() -> None:
    from prometheus_client import REGISTRY

    from services.monitoring import metrics  # noqa: F401  (registers every metric)

    families = list(REGISTRY.collect())
    exported = {m.name for m in families} | {f"{m.name}_total" for m in families if m.type == "counter"}
    named = set(re.findall(r"`(xmodal_[a-z_]+)", README))
    assert len(named) >= 10
    assert named <= exported, f"README names metrics that services/monitoring/metrics.py does not define: " \
        f"{sorted(named - exported)}"
