"""The `xmodal` parser: build_parser() alone knows every subcommand, each one's --help works, and
the parser loads none of the heavy packages (so `xmodal --help` answers at once)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main as cli_main
from cli.invoke import XMODAL, with_root
from cli.main import COMMANDS, build_parser, main

SUBCOMMANDS = ["stack", "worker", "gateway", "publish", "lag", "tenants", "migrate", "eval", "demo"]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_build_parser_alone_knows_every_subcommand_in_order() -> None:
    assert list(_subcommands(build_parser())) == SUBCOMMANDS
    assert [m.__name__ for m in COMMANDS] == [f"cli.{name}" for name in SUBCOMMANDS]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help_and_a_handler(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: xmodal {name}")
    assert callable(_subcommands(build_parser())[name].get_default("handler"))


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(f"    {name} " in out for name in SUBCOMMANDS), out
    assert "XMODAL_" in out


def test_flags_and_defaults() -> None:
    parser = build_parser()
    publish = parser.parse_args(["publish", "--sample", "shapes", "--wait"])
    assert (publish.source, publish.sample, publish.per_class, publish.wait, publish.timeout) == (
        None, "shapes", None, True, 120.0)  # no --per-class: the sample set's own default
    assert parser.parse_args(["publish", "events.jsonl"]).source == Path("events.jsonl")
    lag = parser.parse_args(["lag", "--watch", "--interval", "0.5"])
    assert (lag.watch, lag.json, lag.interval) == (True, False, 0.5)
    assert parser.parse_args(["demo", "--stop"]).stop is True
    assert parser.parse_args(["stack", "status"]).action == "status"


@pytest.mark.parametrize("argv", [[], ["stack", "restart"], ["publish", "--sample", "nope"], ["nope"]])
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "usage: xmodal" in capsys.readouterr().err


def test_an_xmodal_error_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", str(tmp_path / "missing.jsonl")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.jsonl'} does not exist\n"
    assert main(["publish"]) == 2
    assert "give a SOURCE" in capsys.readouterr().err


def test_the_parser_imports_no_heavy_package() -> None:
    heavy = ["torch", "transformers", "faust", "aiokafka", "aiohttp", "weaviate", "services.gateway", "streams"]
    code = ("import json, sys; from cli.main import build_parser; build_parser(); "
            f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], env=with_root({}), capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(out.stdout) == []


def test_python_dash_m_cli_is_the_xmodal_command(tmp_path: Path) -> None:
    done = subprocess.run([*XMODAL, "--help"], env=with_root({}), cwd=tmp_path, capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: xmodal")
    assert cli_main.__name__ == "cli.main"
