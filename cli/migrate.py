"""`xmodal migrate plan | start | resume | status | cutover | rollback | finish`: move a space to a new model
while search keeps answering from the old one (services/migration/).

`start` and `resume` run the worker that fills the new side in the foreground (a second consumer group over
the same topic, with the new model); run them where a worker would run, and run `resume` again after a crash.
The other actions are short and may run anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers
    from services.config import WorkerSettings
    from services.migration.estimate import ModelProbe
    from services.migration.steps import Plan, Progress


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "migrate", help="move a space to a new model without downtime (plan, start, status, cutover, rollback)",
        description="Zero-downtime model migration of XMODAL_WEAVIATE__COLLECTION, which must be a Weaviate "
        "alias (XMODAL_WEAVIATE__BEHIND_ALIAS=true when the collection is created). `start` fills a new "
        "collection from the topic's first event with the new model and follows live events; `cutover` waits "
        "until it has every event published so far, then moves the alias in one step; `rollback` moves it "
        "back. The gateway follows the alias and says which model answered.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("plan", "what a migration would do, and whether it can"),
                       ("start", "record a migration and run the worker that fills the new side")):
        a = actions.add_parser(name, help=text)
        a.add_argument("--space", required=True, help="the space (named vector) to move, e.g. clip")
        a.add_argument("--model", required=True, help="hub id or local path of the new model")
    actions.add_parser("resume", help="run the worker that fills the new side again (after a crash or a stop)")
    status = actions.add_parser("status", help="progress: done/total, rate, ETA, both sides")
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    status.add_argument("--interval", type=float, default=2.0, help="seconds the rate is measured over")
    for name, text in (("cutover", "wait until the new side has caught up, then switch the alias to it"),
                       ("rollback", "wait until the old side has caught up, then switch the alias back")):
        a = actions.add_parser(name, help=text)
        a.add_argument("--timeout", type=float, default=600.0, help="longest wait for the watermark (s)")
    fin = actions.add_parser("finish", help="end a cut-over migration (stop the old-model workers first)")
    fin.add_argument("--drop-old", action="store_true", help="delete the old collection too")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.config import WorkerSettings

    settings = WorkerSettings()
    if args.action in ("start", "resume"):
        return _run_filler(settings, args)
    return asyncio.run(_short(settings, args))


def _run_filler(settings: WorkerSettings, args: argparse.Namespace) -> int:
    from services.migration import steps
    from streams.worker import run_worker

    if args.action == "start":
        state = asyncio.run(steps.begin(settings, args.space, args.model))
        print(f"migrating {state.alias}.{state.space}: {state.old_model} ({state.old_collection}) -> "
              f"{state.new_model} ({state.new_collection}), group {state.group_id}", flush=True)
    else:
        state = asyncio.run(steps.current(settings.weaviate))
        if state.phase == "finished":
            print(f"the migration of {state.alias} is finished; nothing to resume", file=sys.stderr)
            return 1
        print(f"resuming {state.alias}.{state.space} -> {state.new_model} ({state.new_collection}) from the "
              f"committed offsets of {state.group_id}", flush=True)
    filler = steps.worker_settings(settings, state)
    filler.data_dir.mkdir(parents=True, exist_ok=True)
    run_worker(filler)
    return 0


async def _short(settings: WorkerSettings, args: argparse.Namespace) -> int:
    from services.migration import steps

    if args.action == "plan":
        from services.migration.estimate import probe

        plan = await steps.make_plan(settings, args.space, args.model)
        probed = None
        if args.space in settings.spaces:
            probed = await asyncio.to_thread(probe, settings.spaces[args.space].model_copy(update={"name": args.model}))
        print(render_plan(plan, probed))
        return 1 if plan.problems else 0
    if args.action == "status":
        while True:
            progress = await steps.measure(settings, interval_s=args.interval)
            print(json.dumps(progress.to_json(), indent=2) if args.json else render_progress(progress), flush=True)
            if not args.watch:
                return 0
    if args.action in ("cutover", "rollback"):
        side: steps.Side = "new" if args.action == "cutover" else "old"
        started = time.monotonic()
        state = await steps.switch(settings, side, timeout_s=args.timeout,
                                   on_wait=lambda left: print(f"waiting for {left} event(s) to be stored", flush=True))
        serving = state.new_collection if side == "new" else state.old_collection
        answering = state.new_model if side == "new" else state.old_model
        print(f"{state.alias} -> {serving} ({state.space}: {answering}) at watermark "
              f"{json.dumps(state.watermark)}, after {time.monotonic() - started:.1f} s")
        return 0
    state = await steps.finish(settings, drop_old=args.drop_old)
    print(f"finished: {state.alias} is {state.new_collection}. Start the workers with "
          f"XMODAL_SPACES__{state.space.upper()}__NAME={state.new_model} (they go on from the migration group's "
          f"offsets), then stop `xmodal migrate resume`; give the gateways the same setting when they restart"
          + ("" if args.drop_old else f"; {state.old_collection} is kept (--drop-old deletes it)"))
    return 0


def render_plan(plan: Plan, model: ModelProbe | None = None) -> str:
    objects = "?" if plan.objects is None else plan.objects
    lines = [
        f"collection  {plan.alias} -> {plan.serving or '(not an alias)'} ({objects} objects)",
        f"space       {plan.space}: {plan.old_model} -> {plan.new_model}",
        f"new side    {plan.new_collection}, filled by replaying {plan.events} event(s) from offset 0, then live",
    ]
    if model is not None:
        floor = plan.events / model.per_s
        lines += [f"new model   {'+'.join(sorted(model.modalities))}, {model.dim} dims, {model.per_s:.0f} inputs/s "
                  "here (a sample of texts and images)",
                  f"estimate    at least {_duration(floor)} of embedding for this space alone; fetching, decoding, "
                  "writing and the other spaces come on top (`xmodal migrate status` measures the real rate)"]
    lines += [f"cannot      {p}" for p in plan.problems] or ["ok          `xmodal migrate start` with the same flags"]
    return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a (not progressing)"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def render_progress(p: Progress) -> str:
    s = p.state
    pct = 100.0 * p.done / p.total if p.total else 100.0
    rate = "n/a" if p.rate is None else f"{p.rate:.1f} events/s"
    serving = "new" if p.serving == s.new_collection else "old" if p.serving == s.old_collection else "?"
    return "\n".join([
        f"{s.alias}.{s.space}: {s.old_model} -> {s.new_model}  phase {s.phase}  serving {p.serving} ({serving})",
        f"old {s.old_collection}: {p.counts.get(s.old_collection)} objects; new {s.new_collection}: "
        f"{p.counts.get(s.new_collection)} objects, group {s.group_id} ({p.members} member(s))",
        f"done {p.done}/{p.total} events ({pct:.1f}%), rate {rate}, ETA {_duration(p.eta_s)}",
    ])
