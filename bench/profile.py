"""Where the worker's time goes: py-spy samples of the real `xmodal worker` while it drains a backlog.

    python -m bench.profile                      # 3,000 events (half 64x64 PNGs, half texts), 6 s of samples
    python -m bench.profile --events 8000 --seconds 15 --raw /tmp/worker.raw

The performance issue's method: profile first, then after each change, on the same load. This publishes the
events of `make bench`'s throughput run into a fresh topic, starts one worker, and once it is consuming samples
all its threads with py-spy (``--nonblocking``: the worker is not paused, so its rate is the real one) for
``--seconds``. Each sample is put in the category of its innermost frame that belongs to a known package (PIL,
the model, asyncio, the Weaviate client, ...), so "asyncio 27%" means samples whose innermost recognised frame
is in asyncio's code, such as the selector or waking the loop from a thread. Samples of idle threads (blocked
in a lock, a sleep or a socket wait) are not counted, so the figures are CPU work, not wall time.

Prints a table (category, share of samples, samples per consumed event) and the top functions, and writes
bench/results/profile.json; compare two trees by running it on both, one after the other, on the same machine.
Needs the local stack (`make up`); py-spy is in the dev extra (it needs ptrace: root, or
kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import sample_events
from bench.report import Row, table
from services.localstack import LocalStack
from services.publish import EventPublisher
from tests.harness.lanes import Lane, WorkerProcess, wait_stored

RESULTS = Path(__file__).parent / "results"
# (category, what in a frame's file marks it), innermost match wins; first listed wins within one frame
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PIL (decode, resize, encode)", ("/PIL/",)),
    ("model (torch, transformers, tokenizers)", ("/torch/", "/transformers/", "/tokenizers/")),
    ("Weaviate client, gRPC", ("/weaviate/", "/grpc/", "/grpcio")),
    ("aiokafka", ("/aiokafka/", "/kafka/")),
    ("Faust, mode", ("/faust/", "/mode/")),
    ("JSON, pydantic", ("/json/", "/pydantic", "orjson")),
    ("numpy", ("/numpy/",)),
    ("prometheus_client", ("/prometheus_client/",)),
    ("asyncio (selector, loop wake-ups)", ("/asyncio/", "selectors.py")),
    ("xmodal (services/, streams/, schemas/)", ("/services/", "/streams/", "/schemas/")),
)
OTHER = "other (stdlib, threads)"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def category(frames: list[str]) -> str:
    """The category of one sample: its innermost frame (last in the list) that belongs to a known package.

    >>> category(["_run_module_as_main (<frozen runpy>:198)", "prepare (services/ingest/content.py:96)",
    ...           "save (PIL/Image.py:2500)"])
    'PIL (decode, resize, encode)'
    >>> category(["run (threading.py:982)", "select (selectors.py:468)"])
    'asyncio (selector, loop wake-ups)'
    >>> category(["run (threading.py:982)"])
    'other (stdlib, threads)'
    """
    for frame in reversed(frames):
        m = _FRAME.match(frame)
        where = "/" + (m.group("file") if m else frame)
        for name, marks in CATEGORIES:
            if any(mark in where for mark in marks):
                return name
    return OTHER


def summarize(raw: str) -> tuple[Counter[str], Counter[str], int]:
    """(samples per category, samples per innermost function, all samples) of py-spy's raw (collapsed) output.

    Each line is ``frame;frame;...;frame count``, outermost first (with ``--threads`` a thread frame first).

    >>> raw = "thread (0x1);main (a.py:1);save (PIL/Image.py:9) 3\\nthread (0x2);x (json/a.py:2) 1\\n"
    >>> cats, funcs, n = summarize(raw)
    >>> dict(cats), n, funcs.most_common(1)
    ({'PIL (decode, resize, encode)': 3, 'JSON, pydantic': 1}, 4, [('save (PIL/Image.py)', 3)])
    """
    cats: Counter[str] = Counter()
    funcs: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        cats[category(frames)] += n
        funcs[re.sub(r":\d+\)$", ")", frames[-1])] += n
        total += n
    return cats, funcs, total


async def profile(events: int, seconds: float, rate: int, raw_path: Path | None) -> dict[str, Any]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: make setup (it is in the dev extra)")
    stack = LocalStack()
    if not stack.healthy():
        stack.up()
    with tempfile.TemporaryDirectory() as tmpdir:
        lane = Lane(f"p{uuid.uuid4().hex[:10]}", Path(tmpdir))
        await lane.create_topics()
        worker = WorkerProcess(lane)
        try:
            async with EventPublisher(lane.kafka) as pub:
                published = await pub.publish_many(sample_events(events, seed=1))
            worker.start()
            await worker.wait_ready(timeout_s=300)
            assert worker.proc is not None
            out = raw_path or Path(tmpdir) / "worker.raw"
            t0 = time.perf_counter()
            stored0 = worker.metric("xmodal_events_total")
            spied = await asyncio.to_thread(subprocess.run, [
                spy, "record", "--pid", str(worker.proc.pid), "--subprocesses", "--threads", "--nonblocking",
                "--rate", str(rate), "--duration", str(int(seconds)), "--format", "raw", "--output", str(out)],
                capture_output=True, text=True)
            took = time.perf_counter() - t0
            stored = worker.metric("xmodal_events_total") - stored0
            if spied.returncode != 0:
                raise SystemExit(f"py-spy failed ({spied.returncode}): {spied.stderr.strip()[-500:]}")
            await wait_stored(lane, published, timeout_s=900)
            raw = out.read_text()
        finally:
            worker.stop()
            await lane.drop()
    cats, funcs, total = summarize(raw)
    if stored <= 0 or total == 0:
        raise SystemExit(f"nothing to report: {stored:.0f} events consumed and {total} samples in {seconds:g} s; "
                         "give more --events so the worker is busy for the whole sampling window")
    return {"events": events, "seconds": round(took, 1), "rate_hz": rate, "events_consumed_while_sampled": stored,
            "events_per_s": round(stored / took, 1), "samples": total,
            "samples_per_event": round(total / stored, 4),
            "categories": {k: {"samples": v, "share": round(v / total, 4)} for k, v in cats.most_common()},
            "top_functions": [[f, n] for f, n in funcs.most_common(15)]}


def report(result: dict[str, Any]) -> str:
    per_event = result["events_consumed_while_sampled"]
    rows = [Row(name, f"{c['share']:.1%}", f"{c['samples'] / per_event:.4f} samples/event")
            for name, c in result["categories"].items()]
    rows.append(Row("all", f"{result['samples']} samples",
                    f"{result['samples_per_event']:.4f} samples/event at {result['rate_hz']} Hz, "
                    f"{result['events_per_s']:.0f} events/s while sampled"))
    top = "\n".join(f"  {n:6d}  {f}" for f, n in result["top_functions"])
    return f"{table(rows)}\n\ninnermost functions, most samples first:\n{top}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=3000,
                   help="backlog published before the worker starts (default 3000: ~8 s of work here; the "
                        "worker must stay busy for all of --seconds)")
    p.add_argument("--seconds", type=float, default=6.0, help="sampling window (default 6)")
    p.add_argument("--rate", type=int, default=50, help="py-spy samples per second per thread (default 50)")
    p.add_argument("--raw", type=Path, help="keep py-spy's raw (collapsed) stacks here, for a flame graph")
    p.add_argument("--json", type=Path, default=RESULTS / "profile.json",
                   help="where the summary goes (default bench/results/profile.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result = asyncio.run(profile(args.events, args.seconds, args.rate, args.raw))
    print(report(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
