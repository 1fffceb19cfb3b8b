"""Where a process's time goes: py-spy samples of the real `xmodal worker` draining a backlog, or of the real
`xmodal gateway` answering open-loop queries.

    python -m bench.profile                      # the worker: 3,000 events (half 64x64 PNGs, half texts), 6 s
    python -m bench.profile --events 8000 --seconds 15 --raw /tmp/worker.raw
    python -m bench.profile --gateway            # the gateway at 60 text -> image queries/s, 6 s

The performance issue's method: profile first, then after each change, on the same load. The worker run
publishes the events of `make bench`'s throughput run into a fresh topic, starts one worker, and once it is
consuming samples all its threads with py-spy (``--nonblocking``: the process is not paused, so its rate is the
real one) for ``--seconds``. The gateway run indexes the shapes sample into a fresh collection, starts a
gateway over it and samples it while bench/gateway_load.py's open-loop generator sends text -> image queries.

Each sample is put in the category of its innermost frame that belongs to a known package (PIL, the model,
asyncio, the Weaviate client, ...), so "asyncio 27%" means samples whose innermost recognised frame is in
asyncio's code, such as the selector or waking the loop from a thread. Samples of idle threads (blocked in a
lock, a sleep or a socket wait) are not counted, so the figures are CPU work, not wall time.

Prints a table (category, share of samples, samples per event or query) and the top functions, and writes
bench/results/profile.json (profile-gateway.json); compare two trees by running it on both, one after the
other, on the same machine. Needs the local stack (`make up`); py-spy is in the dev extra (it needs ptrace:
root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
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
    ("aiohttp (HTTP server and client)", ("/aiohttp/", "/multidict/", "/yarl/")),
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


def _py_spy() -> str:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: make setup (it is in the dev extra)")
    return spy


async def spy_on(pid: int, seconds: float, rate: int, out: Path) -> str:
    """py-spy's raw stacks of process ``pid`` (and its children) for ``seconds``, without pausing it."""
    spied = await asyncio.create_subprocess_exec(
        _py_spy(), "record", "--pid", str(pid), "--subprocesses", "--threads", "--nonblocking", "--rate",
        str(rate), "--duration", str(int(seconds)), "--format", "raw", "--output", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await spied.communicate()
    if spied.returncode != 0:
        raise SystemExit(f"py-spy failed ({spied.returncode}): {err.decode(errors='replace').strip()[-500:]}")
    return await asyncio.to_thread(out.read_text)


def _result(raw: str, done: float, took: float, rate: int, unit: str) -> dict[str, Any]:
    cats, funcs, total = summarize(raw)
    if done <= 0 or total == 0:
        raise SystemExit(f"nothing to report: {done:.0f} {_plural(unit)} and {total} samples in {took:.0f} s; "
                         "give more work so the process is busy for the whole sampling window")
    return {"unit": unit, "seconds": round(took, 1), "rate_hz": rate, "done_while_sampled": done,
            "per_s": round(done / took, 1), "samples": total, "samples_per_unit": round(total / done, 4),
            "categories": {k: {"samples": v, "share": round(v / total, 4)} for k, v in cats.most_common()},
            "top_functions": [[f, n] for f, n in funcs.most_common(15)]}


def _stack_up() -> None:
    stack = LocalStack()
    if not stack.healthy():
        stack.up()


async def profile_worker(events: int, seconds: float, rate: int, raw_path: Path | None) -> dict[str, Any]:
    """The worker draining ``events`` published before it starts; sampled once it consumes."""
    _py_spy()
    _stack_up()
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
            t0 = time.perf_counter()
            consumed0 = worker.metric("xmodal_events_total")
            raw = await spy_on(worker.proc.pid, seconds, rate, raw_path or Path(tmpdir) / "worker.raw")
            took = time.perf_counter() - t0
            consumed = worker.metric("xmodal_events_total") - consumed0
            await wait_stored(lane, published, timeout_s=900)
        finally:
            worker.stop()
            await lane.drop()
    return {"process": "worker", "events": events, **_result(raw, consumed, took, rate, "event")}


async def profile_gateway(query_rate: float, seconds: float, rate: int, raw_path: Path | None) -> dict[str, Any]:
    """The gateway over the shapes sample answering open-loop text -> image queries at ``query_rate``/s (the
    bench's generator, bench/gateway_load.py, in this process); no ingestion meanwhile."""
    import aiohttp

    from bench.gateway_load import run_phase, text_bodies
    from services.config import WorkerSettings
    from services.embedding.model import load_embedder
    from services.store import AssetStore
    from tests.harness.catalogue import index_shapes_sample
    from tests.harness.gateways import start_gateway, wait_ready

    _py_spy()
    _stack_up()
    with tempfile.TemporaryDirectory() as tmpdir:
        lane = Lane(f"pg{uuid.uuid4().hex[:9]}", Path(tmpdir))
        await lane.create_topics()
        embedder = await asyncio.to_thread(load_embedder, WorkerSettings().spaces["clip"])
        async with AssetStore(lane.weaviate, {embedder.space: embedder.dim}) as store:
            await index_shapes_sample(store, embedder)
        gateway = start_gateway(lane)
        try:
            await wait_ready(gateway)
            url = gateway.url
            bodies = text_bodies()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                await run_phase(session, url, bodies, "warm-up", rate=5.0, seconds=3.0)
                t0 = time.perf_counter()
                load = asyncio.create_task(run_phase(session, url, bodies, "sampled", rate=query_rate,
                                                     seconds=seconds + 1))
                raw = await spy_on(gateway.proc.pid, seconds, rate, raw_path or Path(tmpdir) / "gateway.raw")
                took = time.perf_counter() - t0
                phase = await load
        finally:
            gateway.stop()
            await lane.drop()
    answered = phase.ok * seconds / phase.seconds  # the answers that fell in the sampled window, about
    summary = phase.summary()
    return {"process": "gateway", "query_rate": query_rate, "ok_p50_ms": summary["ok_p50_ms"],
            "ok_p99_ms": summary["ok_p99_ms"], "rejected_429": phase.rejected_429,
            **_result(raw, answered, took, rate, "query")}


def _plural(unit: str) -> str:
    return "queries" if unit == "query" else f"{unit}s"


def report(result: dict[str, Any]) -> str:
    done, unit = result["done_while_sampled"], result["unit"]
    rows = [Row(name, f"{c['share']:.1%}", f"{c['samples'] / done:.4f} samples/{unit}")
            for name, c in result["categories"].items()]
    rows.append(Row("all", f"{result['samples']} samples",
                    f"{result['samples_per_unit']:.4f} samples/{unit} at {result['rate_hz']} Hz, "
                    f"{result['per_s']:.0f} {_plural(unit)}/s while sampled"))
    top = "\n".join(f"  {n:6d}  {f}" for f, n in result["top_functions"])
    head = ""
    if result["process"] == "gateway":
        head = (f"gateway at {result['query_rate']:g} text -> image queries/s: admitted p50 / p99 "
                f"{result['ok_p50_ms']} / {result['ok_p99_ms']} ms, {result['rejected_429']} answered 429\n\n")
    return f"{head}{table(rows)}\n\ninnermost functions, most samples first:\n{top}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gateway", action="store_true",
                   help="profile the gateway under open-loop text -> image queries instead of the worker")
    p.add_argument("--events", type=int, default=3000,
                   help="worker: backlog published before it starts (default 3000: ~8 s of work here; the "
                        "worker must stay busy for all of --seconds)")
    p.add_argument("--query-rate", type=float, default=60.0,
                   help="gateway: text -> image queries/s while sampled (default 60, below saturation here)")
    p.add_argument("--seconds", type=float, default=6.0, help="sampling window (default 6)")
    p.add_argument("--rate", type=int, default=50, help="py-spy samples per second per thread (default 50)")
    p.add_argument("--raw", type=Path, help="keep py-spy's raw (collapsed) stacks here, for a flame graph")
    p.add_argument("--json", type=Path,
                   help="where the summary goes (default bench/results/profile.json, or profile-gateway.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.gateway:
        result = asyncio.run(profile_gateway(args.query_rate, args.seconds, args.rate, args.raw))
    else:
        result = asyncio.run(profile_worker(args.events, args.seconds, args.rate, args.raw))
    print(report(result))
    out = args.json or RESULTS / ("profile-gateway.json" if args.gateway else "profile.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
