"""`xmodal eval`: the parser and its help, --export, the errors that exit 2, and a whole evaluation and a
golden check against the fake gateway of conftest.py."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from cli.eval import _spaces, check_golden_file, evaluate_set
from cli.main import build_parser, main
from services.errors import ConfigError
from services.evaluation.errors import GatewayRefused
from services.evaluation.report import render_text
from services.evaluation.sets import EvalQuery, LabelledSet, load_set, write_set
from tests.unit.evaluation.conftest import FakeGateway

SET = LabelledSet("mini", [
    EvalQuery("t1", "text->image", {"text": "a red circle"}),
    EvalQuery("t2", "text->image", {"text": "a blue star"}),
    EvalQuery("bad", "image->text", {"image": {"data": "bm90IGFuIGltYWdl"}}),
], {"t1": {"a": 1}, "t2": {"b": 1, "c": 0}, "bad": {"x": 1}})


def test_defaults_and_flags() -> None:
    args = build_parser().parse_args(["eval"])
    assert (args.set, args.gateway, args.api_key, args.k, args.rerank, args.spaces, args.json, args.export,
            args.golden, args.per_query) == ("demo", "http://127.0.0.1:8000", None, 10, None, None, None, None,
                                             None, False)
    args = build_parser().parse_args(["eval", "--set", "dir", "--rerank", "both", "--spaces", "all",
                                      "--json", "out.json", "--k", "20", "--api-key", "s3cret"])
    assert (args.set, args.rerank, args.spaces, args.json, args.k, args.api_key) == (
        "dir", "both", "all", Path("out.json"), 20, "s3cret")


def test_help_explains_the_set_format_and_gives_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for part in ("queries.jsonl", '{"qid": "t2i-0001", "direction": "text->image"', "qrels.txt",
                 "`qid 0 asset_id relevance`", "--rerank both --spaces all", "Exit status: 0", "examples:"):
        assert part in out
    # each column with the ir-measures measure that computes it
    for part in ("R@1, R@5, R@10 = Success@1, Success@5, Success@10: share of queries with a relevant asset in "
                 "the top k", "MRR            = RR:", "nDCG@10        = nDCG@10:",
                 "Rec@10         = R@10: trec recall, share of the query's relevant assets in the top 10"):
        assert part in out


def test_export_writes_the_set_that_loads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_set(SET, tmp_path / "mini")
    assert main(["eval", "--set", str(tmp_path / "mini"), "--export", str(tmp_path / "copy")]) == 0
    assert capsys.readouterr().out == f"wrote 3 queries and their qrels to {tmp_path / 'copy'}\n"
    copy = load_set(tmp_path / "copy")
    assert (copy.queries, copy.qrels) == (SET.queries, SET.qrels)


@pytest.mark.parametrize(("argv", "message"), [
    (["--k", "5"], "--k must be within 10..100"),
    (["--set", "/nonexistent/set"], "/nonexistent/set: no such directory"),
    (["--golden", "/nonexistent/golden.yaml"], "cannot read the golden file /nonexistent/golden.yaml"),
])
def test_usage_errors_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_no_gateway_exits_2_and_says_to_start_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_set(SET, tmp_path / "mini")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["eval", "--set", str(tmp_path / "mini"), "--gateway", f"http://127.0.0.1:{port}",
                 "--no-progress"]) == 2
    assert "cannot reach the gateway" in capsys.readouterr().err


def test_spaces_choice() -> None:
    known = {"clip": "m", "clap": "c"}
    assert _spaces(None, known) == [None]
    assert _spaces("all", known) == ["clip", "clap"]
    assert _spaces("clap, clip", known) == ["clap", "clip"]
    with pytest.raises(ConfigError, match=r"--spaces: unknown large; the gateway's spaces .* are clip, clap"):
        _spaces("clip,large", known)


async def test_a_whole_evaluation_with_every_space(fake: tuple[FakeGateway, str]) -> None:
    gw, url = fake
    ev = await evaluate_set(SET, url, api_key=None, k=10, rerank=None, spaces="all", progress=False)
    # no reranker (probed): one setting; clap answers nothing here (no_space): skipped quietly
    assert {r.rerank for r in ev.rows} == {False}
    assert [(s.direction, s.space) for s in ev.skipped] == [("text->image", "clap"), ("image->text", "clap")]
    assert [(r.direction, r.space, r.n, len(r.failures)) for r in ev.rows] == [
        ("text->image", "clip", 2, 0), ("image->text", "clip", 0, 1)]
    t2i = ev.rows[0]
    assert t2i.measures["R@1"].mean == pytest.approx(0.5)  # t1: a at rank 2; t2: b first
    assert t2i.measures["MRR"].mean == pytest.approx(0.75)
    assert t2i.measures["R@5"].mean == t2i.measures["Rec@10"].mean == pytest.approx(1.0)  # c is judged 0
    assert ev.failed == 1 and "bad (image->text, clip): 400 undecodable" in render_text(ev)
    searched = [b for b in gw.bodies if b["limit"] == 10]
    assert {b.get("space") for b in searched} == {"clip"}


async def test_rerank_both_compares_and_rerank_on_needs_a_reranker(fake: tuple[FakeGateway, str]) -> None:
    gw, url = fake
    with pytest.raises(GatewayRefused, match=r"no reranker configured .* use --rerank off"):
        await evaluate_set(SET, url, api_key=None, k=10, rerank="on", spaces=None, progress=False)
    gw.reranker = True
    ev = await evaluate_set(SET, url, api_key=None, k=10, rerank=None, spaces=None, progress=False)
    assert [(r.direction, r.rerank) for r in ev.rows] == [
        ("text->image", False), ("image->text", False), ("text->image", True), ("image->text", True)]
    (delta,) = ev.deltas
    assert delta.rerank_took is not None and delta.rerank_took.p50 == pytest.approx(2.5)


async def test_golden_once(fake: tuple[FakeGateway, str], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    _, url = fake
    golden = tmp_path / "golden.yaml"
    golden.write_text(json.dumps([
        {"name": "b first", "request": {"text": "x", "limit": 2}, "expect": {"top1": "b"}},
        {"name": "a first", "request": {"text": "y", "limit": 2}, "expect": {"top1": "a"}},
    ]))
    assert await check_golden_file(golden, url, api_key=None) == 1
    out = capsys.readouterr().out
    assert "FAIL a first: top1: 'b' came first, not 'a'" in out
    assert "golden queries: 1 of 2 passed (50%)" in out
    golden.write_text(json.dumps([{"name": "b first", "request": {"text": "x"}, "expect": {"top1": "b"}}]))
    assert await check_golden_file(golden, url, api_key=None) == 0
