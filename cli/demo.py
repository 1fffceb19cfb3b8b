"""`xmodal demo`: the whole thing on one machine, offline, with the shapes sample set."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.invoke import XMODAL, with_root

if TYPE_CHECKING:
    from cli.command import Subparsers

QUERIES = ("a photo of a red circle", "a photo of a yellow star", "something blue")
SOUND_QUERIES = ("a low hum", "three short high beeps", "a rising siren")
VIDEO_QUERIES = ("a photo of a blue circle", "a photo of a red star")
SOUNDS_PER_CLASS = 3  # 28 classes: 84 clips and 28 texts
PER_CLASS = 4  # 24 classes: 96 images and 24 texts


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="worker + gateway in the background, publish the sample sets, show what is searchable",
        description="Expects the local stack up (make up). Starts the worker and the gateway as background "
        "processes (logs in ~/.local/state/xmodal/demo), publishes the sample sets (shapes, scenes and, with "
        "an audio space, sounds), waits until they are indexed, prints sample searches and checks the demo's "
        "golden queries. Runs offline with the shipped models. A second run "
        "reuses the processes already running. --stop stops the worker and the gateway.",
    )
    p.add_argument("--stop", action="store_true", help="stop the demo's worker and gateway instead")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return stop_demo() if args.stop else run_demo()


def _demo_dir() -> Path:
    from services.config import StackSettings

    d = StackSettings().state_dir.parent / "demo"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _start(name: str, ready: Callable[[], bool], timeout_s: float, env: dict[str, str] | None = None) -> None:
    from services.localstack.process import read_pid, spawn, stop, wait_until

    d = _demo_dir()
    pid_file, log_file = d / f"{name}.pid", d / f"{name}.log"
    if read_pid(pid_file) is not None and ready():
        print(f"  {name} already running (log: {log_file})")
        return
    stop(pid_file)
    t0 = time.monotonic()
    pid = spawn([*XMODAL, name], env=with_root({**os.environ, **(env or {})}), cwd=d, log_file=log_file,
                pid_file=pid_file)
    wait_until(ready, what=f"xmodal {name}", timeout_s=timeout_s, pid=pid, log_file=log_file)
    print(f"  {name} ready in {time.monotonic() - t0:.1f}s (pid {pid}, log: {log_file})")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _search(base: str, q: str, target: str, limit: int) -> dict[str, Any]:
    url = f"{base}/v1/search?" + urllib.parse.urlencode({"q": q, "target": target, "limit": limit})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: dict[str, Any] = json.load(resp)
    return body


def _dead_letters(metrics_url: str) -> Counter[str]:
    """The worker's dead letters so far, by reason (from its /metrics; empty when it cannot be read)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return Counter()
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "xmodal_dead_letters":
            for sample in family.samples:
                if sample.name == "xmodal_dead_letters_total":
                    counts[sample.labels.get("reason", "?")] += int(sample.value)
    return counts


def _takes_audio(model: str) -> bool:
    from services.config import BUILTIN_SOUNDS_MODEL

    return model == BUILTIN_SOUNDS_MODEL or "clap" in model.lower()


def run_demo() -> int:
    from cli.eval import check_golden_file
    from cli.publish import publish_events
    from services.config import GatewaySettings, WorkerSettings, enabled_spaces
    from services.errors import ConfigError
    from services.evaluation.golden import DEMO_GOLDEN_FILE
    from services.localstack import LocalStack
    from services.samples import scenes_sample, shapes_sample, sounds_sample
    from services.video_samples import clips_sample

    stack = LocalStack()
    if not stack.healthy():
        raise ConfigError("the local stack is not up: run `make up` (or `make demo`, which does it)")
    w, g = WorkerSettings(), GatewaySettings()
    print("==> starting the worker and the gateway")
    _start("worker", lambda: _http_ok(f"http://{w.web_host}:{w.web_port}/readyz"), 180)
    base = f"http://{g.host}:{g.port}"
    golden = g.golden_file or DEMO_GOLDEN_FILE  # the gateway checks the demo's golden queries on a schedule
    _start("gateway", lambda: _http_ok(f"{base}/readyz"), 180, env={"XMODAL_GOLDEN_FILE": str(golden)})

    events = shapes_sample(PER_CLASS) + scenes_sample() + clips_sample()
    with_audio = any(_takes_audio(m.name) for m in enabled_spaces(w.spaces).values())
    if with_audio:
        events += sounds_sample(SOUNDS_PER_CLASS)
    counts = Counter(e.modality.value for e in events if e.modality is not None)
    print(f"==> publishing the sample sets ({', '.join(f'{n} {m}' for m, n in sorted(counts.items()))}) and "
          "waiting until they are searchable")
    metrics_url = f"http://{w.web_host}:{w.web_port}/metrics"
    letters_before = _dead_letters(metrics_url)
    rc = asyncio.run(publish_events(events, w.kafka, wait_timeout_s=300.0))
    if rc != 0:
        return rc
    new_letters = _dead_letters(metrics_url) - letters_before
    if new_letters:
        reasons = ", ".join(f"{n} {reason}" for reason, n in new_letters.most_common())
        print(f"!!  {sum(new_letters.values())} of the sample events became dead letters ({reasons}): the index "
              f"does not hold them. The reasons are in the topic assets.dlq and the worker's log "
              f"({_demo_dir() / 'worker.log'}); `make clean-stack` starts from an empty store.")
    print("==> sample searches (text -> image)")
    for q in QUERIES:
        for rank, r in enumerate(_search(base, q, "image", 3)["results"]):
            meta = r["metadata"]
            shows = meta.get("description") or f"a {meta.get('color')} {meta.get('shape')}"
            print(f"  {q if rank == 0 else '':<28} {rank + 1}. {shows} ({r['score']:.2f})")
    if with_audio:
        print("==> sample searches (text -> audio)")
        for q in SOUND_QUERIES:
            top = ", ".join(f"{r['metadata'].get('caption')} ({r['score']:.2f})"
                            for r in _search(base, q, "audio", 3)["results"])
            print(f"  {q!r:<28} -> {top}")
    print("==> sample searches (text -> video: the best segment's time code)")
    for q in VIDEO_QUERIES:
        top = ", ".join(f"{r['asset_id']} at {r['start_s']:.1f} s ({r['score']:.2f})"
                        for r in _search(base, q, "video", 2)["results"])
        print(f"  {q!r:<28} -> {top}")
    print(f"==> golden queries ({golden}), as `xmodal eval --golden` checks them")
    asyncio.run(check_golden_file(golden, base, api_key=None))
    print(f"""
xmodal is running.
  search page     {base}/
  status page     {base}/status  (its Golden queries section: the gateway's check every {g.golden_interval_s:g} s)
  search API      curl '{base}/v1/search?q=a+photo+of+a+green+triangle&target=image&limit=3'
  worker metrics  http://{w.web_host}:{w.web_port}/metrics
  stream lag      ./xmodal lag
  quality         ./xmodal eval  (every direction, with and without re-ranking, on the demo's labelled set)
Stop everything with `make down`.""")
    return 0


def stop_demo() -> int:
    from services.localstack.process import stop

    d = _demo_dir()
    stopped = [name for name in ("gateway", "worker") if stop(d / f"{name}.pid")]
    print("stopped:", ", ".join(stopped) if stopped else "no demo process was running")
    return 0
