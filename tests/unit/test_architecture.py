"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and they do catch a broken rule.

`make lint` runs the same contracts on the checkout; here they run on a copy of our packages, once as they
are and once with one forbidden import added, so a contract that silently stopped matching would show.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "services", "streams", "cli")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contract_names() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return [c["name"] for c in config["contracts"]]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("arch")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def lint(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(where / "pyproject.toml")],
                          cwd=where, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_contracts_cover_the_design_rules() -> None:
    names = " / ".join(contract_names())
    for rule in ("schemas import nothing", "services never import streams or the CLI", "faust",
                 "torch and transformers", "weaviate", "the gateway imports neither", "cycles"):
        assert rule in names


def test_the_code_keeps_every_contract(copy: Path) -> None:
    out = lint(copy)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(contract_names())} kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("services/errors.py", "import faust", "only streams imports faust"),
        ("services/gateway/query.py", "import services.ingest.plans", "the gateway imports neither"),
        ("services/ingest/plans.py", "import torch", "only the embedding package imports torch"),
        ("schemas/dead_letter.py", "import services.errors", "schemas import nothing of ours"),
        ("services/store/models.py", "import services.store.store", "no import cycles"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(copy: Path, tmp_path: Path, module: str, line: str,
                                                 contract: str) -> None:
    broken = tmp_path / "tree"
    shutil.copytree(copy, broken)
    target = broken / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    out = lint(broken)
    assert out.returncode != 0
    assert f"{contract}" in out.stdout and "BROKEN" in out.stdout, out.stdout
