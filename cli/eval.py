"""`xmodal eval`: retrieval quality of a running gateway on a labelled set, per direction, as a table (and
JSON); ``--golden`` checks golden queries once instead; ``--export`` writes a set's files."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers
    from services.evaluation.client import GatewayClient
    from services.evaluation.report import Evaluation, Skipped
    from services.evaluation.runner import RunResult
    from services.evaluation.sets import EvalQuery, LabelledSet

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
MIN_K = 10  # the table reports R@10, nDCG@10 and Rec@10

EPILOG = """\
labelled set: a directory holding two files
  queries.jsonl  one JSON object a line:
    {"qid": "t2i-0001", "direction": "text->image", "request": {"text": "a photo of a red circle"}}
    direction: text->image, image->text, image->image, text->audio, audio->text, audio->audio, text->text;
    request: a /v1/search body with exactly one of text, image, audio (image/audio as {"data": BASE64} or
    {"uri": URI}) plus any option (filters, mode, ...); target defaults to the direction's right side;
    limit, offset, rerank and space are set by xmodal eval (--k, --rerank, --spaces).
  qrels.txt      TREC qrels, one judgement a line: `qid 0 asset_id relevance`
    t2i-0001 0 shape-red-circle-0003 1
    (relevance an integer: >= 1 relevant, higher = more relevant for nDCG; 0 judged not relevant;
    assets not listed count as not relevant). Every query needs a relevant asset.

measures (trec_eval via ir-measures; the name in the table and the JSON = the ir-measures measure):
  R@1, R@5, R@10 = Success@1, Success@5, Success@10: share of queries with a relevant asset in the top k
                   (1 or 0 per query), the Recall@K of cross-modal retrieval papers (CLIP)
  MRR            = RR: mean of 1 / the rank of the first relevant result (0 when none is in the k results)
  nDCG@10        = nDCG@10: discounted cumulative gain of the top 10 (gain = relevance, discount
                   log2(rank + 1)) over that of the ideal order
  Rec@10         = R@10: trec recall, share of the query's relevant assets in the top 10 (at most 10/n
                   for a query with n relevant assets)
  each a mean over the answered queries of a direction with a 95% bootstrap interval [low,high]; failed
  queries (4xx) are counted and listed apart. The modality gap and --rerank both compare R@1, MRR, nDCG@10.
Exit status: 0 all answered (--golden: all passed), 1 some query failed, 2 usage or connection error.

examples:
  make demo && ./xmodal eval                           # the demo catalogue's set, the gateway's choices
  ./xmodal eval --rerank both --spaces all --json eval.json
  ./xmodal eval --export ./my-set && ./xmodal eval --set ./my-set
  ./xmodal eval --golden services/evaluation/golden_demo.yaml
"""


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="retrieval quality of a running gateway on a labelled set, per direction (R@k = Success@k, MRR, "
        "nDCG@10, Rec@10)",
        description="Sends a labelled set's queries to a running gateway (POST /v1/search) and prints R@1,\n"
        "R@5, R@10 (Success@k), MRR, nDCG@10 and Rec@10 (trec recall) per direction with 95% confidence\n"
        "intervals, latency and failures, the modality gap between opposite directions and, with\n"
        "--rerank both, what re-ranking changes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--set", default="demo", metavar="DIR|demo",
                   help="labelled set directory, or `demo` (default): the set of the `make demo` catalogue")
    p.add_argument("--gateway", default=DEFAULT_GATEWAY, metavar="URL",
                   help=f"the gateway's base URL (default {DEFAULT_GATEWAY})")
    p.add_argument("--api-key", default=None, help="X-API-Key to send (one of the gateway's XMODAL_API_KEYS)")
    p.add_argument("--k", type=int, default=10, help=f"results asked per query (default 10, at least {MIN_K})")
    p.add_argument("--rerank", choices=("off", "on", "both"), default=None,
                   help="re-ranking: off, on, or both (each direction without and with, compared); default: "
                   "both when the gateway has a reranker (probed with one search), else off")
    p.add_argument("--spaces", default=None, metavar="all|NAME,...",
                   help="evaluate each direction in every space of /readyz that answers it (all) or in these; "
                   "default: the space the gateway chooses")
    p.add_argument("--concurrency", type=int, default=4, help="searches in flight at once (default 4)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the report as JSON to PATH (not written without it)")
    p.add_argument("--per-query", action="store_true", help="include per-query values in the --json report")
    p.add_argument("--export", type=Path, default=None, metavar="DIR",
                   help="write the chosen set as queries.jsonl + qrels.txt into DIR and exit (no gateway needed)")
    p.add_argument("--golden", type=Path, default=None, metavar="FILE",
                   help="check the golden queries of this YAML file once instead of a labelled set")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.errors import ConfigError

    if args.k < MIN_K or args.k > 100:
        raise ConfigError(f"--k must be within {MIN_K}..100 (the table reports R@10, nDCG@10 and Rec@10); got "
                          f"{args.k}")
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if args.golden is not None:
        return asyncio.run(check_golden_file(args.golden, args.gateway, api_key=args.api_key))
    labelled = choose_set(args.set)
    if args.export is not None:
        from services.evaluation.sets import write_set

        write_set(labelled, args.export)
        print(f"wrote {len(labelled.queries)} queries and their qrels to {args.export}")
        return 0
    ev = asyncio.run(evaluate_set(labelled, args.gateway, api_key=args.api_key, k=args.k, rerank=args.rerank,
                                  spaces=args.spaces, concurrency=args.concurrency,
                                  progress=not args.no_progress))
    from services.evaluation.report import render_text, report_json

    print(render_text(ev))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report_json(ev, per_query=args.per_query), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if ev.failed else 0


def choose_set(name: str) -> LabelledSet:
    """The demo set, or the set in directory ``name``."""
    if name == "demo":
        from services.evaluation.demo import demo_set

        return demo_set()
    from services.evaluation.sets import load_set

    return load_set(Path(name))


async def evaluate_set(labelled: LabelledSet, base_url: str, *, api_key: str | None, k: int, rerank: str | None,
                       spaces: str | None, concurrency: int = 4, progress: bool = True) -> Evaluation:
    """Probe the gateway, run the set once per re-ranking setting and space, and score the runs."""
    from services.evaluation.client import GatewayClient
    from services.evaluation.errors import GatewayRefused
    from services.evaluation.report import evaluate
    from services.evaluation.runner import run_with

    async with GatewayClient(base_url, api_key=api_key) as gw:
        ready = await gw.readiness()
        if not ready.ready:
            failing = ", ".join(name for name, ok in ready.checks.items() if not ok) or "unknown"
            raise GatewayRefused(f"the gateway at {base_url} is not ready (failing: {failing}); wait for it, or "
                                 "check `./xmodal stack status`")
        modes = await _rerank_modes(gw, labelled.queries, rerank)
        plan, skipped = await _space_plan(gw, labelled, _spaces(spaces, ready.spaces))
        runs: list[RunResult] = []
        for mode in modes:
            for space, queries in plan:
                label = f"rerank {'on' if mode else 'off'}" + (f", space {space}" if space else "")
                runs.append(await run_with(gw, queries, k=k, rerank=mode, space=space, concurrency=concurrency,
                                           progress=progress, label=label))
    return evaluate(labelled, runs, gateway_url=base_url, spaces=ready.spaces, k=k, skipped=skipped)


async def _rerank_modes(gw: GatewayClient, queries: list[EvalQuery], choice: str | None) -> list[bool]:
    from services.evaluation.client import rerank_available
    from services.evaluation.errors import GatewayRefused
    from services.evaluation.runner import search_body

    if choice == "off":
        return [False]
    available = await rerank_available(gw, [search_body(q, k=1) for q in queries[:3]])
    if choice is None:
        return [False, True] if available else [False]
    if not available:
        raise GatewayRefused("the gateway has no reranker configured (400 rerank_unavailable); configure one "
                             "(see README, re-ranking) or use --rerank off")
    return [True] if choice == "on" else [False, True]


def _spaces(choice: str | None, known: dict[str, str]) -> list[str | None]:
    from services.errors import ConfigError

    if choice is None:
        return [None]
    names = list(known) if choice == "all" else [s.strip() for s in choice.split(",") if s.strip()]
    unknown = [s for s in names if s not in known]
    if unknown or not names:
        raise ConfigError(f"--spaces: unknown {', '.join(unknown) or 'nothing given'}; the gateway's spaces "
                          f"(/readyz) are {', '.join(known) or 'none'}, or give `all`")
    return list(names)


async def _space_plan(gw: GatewayClient, labelled: LabelledSet, spaces: list[str | None]) -> tuple[
        list[tuple[str | None, list[EvalQuery]]], list[Skipped]]:
    """Per space, the queries of the directions it answers (probed with each direction's first query)."""
    from services.evaluation.client import space_answers
    from services.evaluation.report import Skipped
    from services.evaluation.runner import search_body

    plan: list[tuple[str | None, list[EvalQuery]]] = []
    skipped: list[Skipped] = []
    for space in spaces:
        if space is None:
            plan.append((None, list(labelled.queries)))
            continue
        queries: list[EvalQuery] = []
        for direction in labelled.directions():
            of_direction = labelled.of_direction(direction)
            probe = search_body(of_direction[0], k=1)
            if await space_answers(gw, probe, space):
                queries += of_direction
            else:
                skipped.append(Skipped(direction, space))
        if queries:
            plan.append((space, queries))
    return plan, skipped


async def check_golden_file(path: Path, base_url: str, *, api_key: str | None) -> int:
    """Run the golden queries of ``path`` once: 0 when all pass, 1 when any fails (each printed with why)."""
    from services.evaluation.client import GatewayClient
    from services.evaluation.golden import check_golden, load_golden

    goldens = load_golden(path)
    async with GatewayClient(base_url, api_key=api_key) as gw:
        await gw.readiness()  # no gateway at all is a connection error (exit 2), not a failed golden query
        report = await check_golden(goldens, gw.search)
    for failure in report.failed:
        print(f"FAIL {failure.name}: {failure.reason}")
    total = report.passed + len(report.failed)
    print(f"golden queries: {report.passed} of {total} passed ({report.ratio:.0%}) against {base_url}")
    return 1 if report.failed else 0
