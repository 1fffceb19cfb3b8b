"""Open-loop load on a running gateway: unloaded latency, capacity, then a run at a multiple of capacity.

Open loop: request i is sent at ``start + i / rate`` whether or not earlier ones were answered (each is its
own task, and the client pool has no connection limit), so a slow gateway meets the same arrival rate as a
fast one, as users would, instead of a closed loop that politely slows down with it. Latency is counted from
the moment a request is sent; how late the generator itself sent (its own CPU starvation on a shared
machine) is reported as ``send_lag_p99_ms`` so a lagging generator is visible rather than hidden.

Phases, one after the other, against ``--url``:

1. unloaded: ``--low-rate`` text queries/s for ``--unloaded-s``: p50/p99 (after a short warm-up);
2. fixed (only with ``--fixed-rate`` > 0): text -> image, then image -> image, each at ``--fixed-rate``/s for
   ``--fixed-s`` (the issue's "p99 at 100 queries/s" figures), with their own unloaded image p50/p99 first;
3. capacity: steps from ``--search-from`` (default ``--low-rate``) up by ``--step-factor`` each, ``--step-s``
   each; capacity is the highest rate whose queries were almost all admitted (429s under 1%) with a p99 under
   the threshold (``--threshold-ms``; default max(3 x unloaded p99, unloaded p99 + 150 ms)); a step that fails
   either is run once more, and the search stops when it fails again. ``capacity_at_target_per_s`` is the
   highest rate seen (the unloaded phase counts) whose p99 stayed under ``--target-ms`` (25 ms by default) with
   under 1% 429s: the latency target's own capacity, usually below the saturation capacity;
4. overload: ``--factor`` x capacity for ``--duration-s``: answered / 429 / 5xx / other counts and the p50/p99
   of the admitted (2xx) queries.

Text queries are varied texts over the shapes vocabulary (colours x shapes x sizes x templates, one or two
things), drawn from a seeded generator: a few thousand distinct texts, so the gateway's query cache
answers about a fifth of them (repeats) and the model is loaded much as real traffic would load it. Image
queries are 64x64 PNGs of the shapes world (held-out split), sent inline; the gateway caches no image
vectors, so each one is decoded and embedded. Every query asks for images (``target: image``), 10 results.

Prints a table and writes JSON (``--out``, default bench/results/gateway_overload.json)::

    python -m bench.gateway_load --url http://127.0.0.1:8000 --duration-s 120
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from services.embedding.shapes.world import COLORS, SHAPES, generate

DEFAULT_OUT = Path(__file__).parent / "results" / "gateway_overload.json"
_SIZES = ("", "small ", "large ", "big ", "tiny ", "bright ", "dark ")
_ONE = ("a {t}", "a photo of a {t}", "{t}", "a picture of a {t}", "the {t}", "an image showing a {t}",
        "find a {t}", "something like a {t}")
_TWO = ("a {t} and a {u}", "a {t} next to a {u}", "a {t} above a {u}", "a {t} left of a {u}")


def queries(seed: int = 7) -> Iterator[str]:
    """An endless, seeded stream of shapes-vocabulary search texts (about a fifth are repeats)."""
    rng = random.Random(seed)
    colors = list(COLORS)

    def thing() -> str:
        return f"{rng.choice(_SIZES)}{rng.choice(colors)} {rng.choice(SHAPES)}"

    while True:
        if rng.random() < 0.5:
            yield rng.choice(_ONE).format(t=thing())
        else:
            yield rng.choice(_TWO).format(t=thing(), u=thing())


Body = dict[str, Any]


def text_bodies(seed: int = 7) -> Iterator[Body]:
    """text -> image search requests over :func:`queries`."""
    for text in queries(seed):
        yield {"text": text, "target": "image", "limit": 10}


def image_bodies(seed: int = 7, distinct: int = 400) -> Iterator[Body]:
    """image -> image search requests: ``distinct`` shapes images (inline PNG), drawn at random, forever."""
    encoded = []
    for s in generate(distinct, seed=seed, split="val"):
        buf = io.BytesIO()
        s.image.save(buf, format="PNG")
        encoded.append(base64.b64encode(buf.getvalue()).decode())
    rng = random.Random(seed)
    while True:
        yield {"image": {"data": rng.choice(encoded)}, "target": "image", "limit": 10}


@dataclass
class Phase:
    """What one constant-rate run saw."""

    name: str
    rate: float
    seconds: float
    sent: int = 0
    ok: int = 0
    rejected_429: int = 0
    errors_5xx: int = 0
    other_status: int = 0
    client_errors: int = 0  # no HTTP answer: connection refused/reset, client timeout
    ok_ms: list[float] = field(default_factory=list, repr=False)
    rejected_ms: list[float] = field(default_factory=list, repr=False)
    lag_ms: list[float] = field(default_factory=list, repr=False)
    statuses: dict[str, int] = field(default_factory=dict)
    reasons_429: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_share(self) -> float:
        return self.rejected_429 / self.sent if self.sent else 0.0

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("ok_ms", "rejected_ms", "lag_ms")}
        out.update(
            ok_p50_ms=percentile(self.ok_ms, 50), ok_p99_ms=percentile(self.ok_ms, 99),
            ok_max_ms=round(max(self.ok_ms), 1) if self.ok_ms else None,
            rejected_p99_ms=percentile(self.rejected_ms, 99), send_lag_p99_ms=percentile(self.lag_ms, 99),
            rejected_share=round(self.rejected_share, 4), goodput_per_s=round(self.ok / self.seconds, 1),
        )
        return out


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty).

    >>> percentile([float(v) for v in range(1, 101)], 99), percentile([], 50)
    (99.0, None)
    """
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))], 1)


async def _one(session: aiohttp.ClientSession, url: str, request: Body, phase: Phase, lag_ms: float) -> None:
    sent = time.perf_counter()
    try:
        async with session.post(f"{url}/v1/search", json=request) as resp:
            body = await resp.read()
            status = resp.status
            retry_after = resp.headers.get("Retry-After")
    except (aiohttp.ClientError, TimeoutError):
        phase.client_errors += 1
        return
    ms = (time.perf_counter() - sent) * 1000
    phase.lag_ms.append(lag_ms)
    phase.statuses[str(status)] = phase.statuses.get(str(status), 0) + 1
    if 200 <= status < 300:
        phase.ok += 1
        phase.ok_ms.append(ms)
    elif status == 429:
        phase.rejected_429 += 1
        phase.rejected_ms.append(ms)
        reason = _reason(body) if retry_after is not None else "no Retry-After"
        phase.reasons_429[reason] = phase.reasons_429.get(reason, 0) + 1
    elif status >= 500:
        phase.errors_5xx += 1
    else:
        phase.other_status += 1


def _reason(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        details = error.get("details") or [{}]
        return str(details[0].get("reason", error["code"]))
    except (ValueError, KeyError, TypeError, IndexError):
        return "not JSON"


async def run_phase(session: aiohttp.ClientSession, url: str, bodies: Iterator[Body], name: str, *, rate: float,
                    seconds: float) -> Phase:
    """Send at ``rate``/s for ``seconds`` (open loop), then wait for every answer."""
    phase = Phase(name, round(rate, 1), seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: set[asyncio.Task[None]] = set()
    total = max(1, round(rate * seconds))
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_one(session, url, next(bodies), phase, max(0.0, -delay) * 1000))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        phase.sent += 1
    if tasks:
        await asyncio.wait(tasks)
    return phase


@dataclass(frozen=True)
class Plan:
    low_rate: float = 5.0
    warmup_s: float = 3.0
    unloaded_s: float = 10.0
    fixed_rate: float = 0.0
    fixed_s: float = 15.0
    search_from: float = 0.0
    step_s: float = 4.0
    step_factor: float = 1.3
    max_rate: float = 1000.0
    target_ms: float = 25.0
    factor: float = 2.0
    duration_s: float = 120.0
    threshold_ms: float | None = None
    timeout_s: float = 30.0


HELP = {
    "low_rate": "queries/s of the warm-up and unloaded phases",
    "warmup_s": "warm-up seconds (not reported)",
    "unloaded_s": "seconds of the unloaded phase (its p99 is the reference)",
    "fixed_rate": "queries/s of the fixed text -> image and image -> image phases; 0 skips them",
    "fixed_s": "seconds of each fixed-rate phase",
    "search_from": "first rate of the capacity search is this times --step-factor (0: --low-rate)",
    "step_s": "seconds per capacity step",
    "step_factor": "rate multiplier from one capacity step to the next",
    "max_rate": "the capacity search stops here",
    "target_ms": "p99 target: capacity_at_target_per_s is the highest rate that kept p99 under it",
    "factor": "overload rate = factor x capacity",
    "duration_s": "seconds of the overload phase",
    "threshold_ms": "p99 bound of a served capacity step (default max(3 x unloaded p99, unloaded p99 + 150))",
    "timeout_s": "client timeout per query (a query past it counts as 'no answer')",
}


def threshold_of(plan: Plan, unloaded_p99: float) -> float:
    return plan.threshold_ms or max(3 * unloaded_p99, unloaded_p99 + 150.0)


def within(step: Phase, threshold_ms: float) -> bool:
    """Whether a capacity step was served: under 1% 429s, no 5xx, p99 under the threshold."""
    p99 = step.summary()["ok_p99_ms"]
    return step.rejected_share < 0.01 and not step.errors_5xx and p99 is not None and p99 <= threshold_ms


def capacity_at(phases: list[Phase], target_ms: float) -> float:
    """The highest rate among ``phases`` that was served within ``target_ms`` (0.0 when none was).

    >>> fast, slow = Phase("a", 10, 1, sent=10, ok=10, ok_ms=[5.0] * 10), Phase("b", 20, 1, sent=1, ok=1, ok_ms=[40.0])
    >>> capacity_at([fast, slow], 25.0), capacity_at([slow], 25.0)
    (10, 0.0)
    """
    return max((p.rate for p in phases if within(p, target_ms)), default=0.0)


async def _search(session: aiohttp.ClientSession, url: str, bodies: Iterator[Body], plan: Plan,
                  threshold: float) -> tuple[float, list[Phase]]:
    """The capacity search: (capacity, the steps run)."""
    steps: list[Phase] = []
    capacity = plan.low_rate
    rate = (plan.search_from or plan.low_rate) * plan.step_factor
    while rate <= plan.max_rate:
        step = await run_phase(session, url, bodies, f"step {rate:.0f}/s", rate=rate, seconds=plan.step_s)
        steps.append(step)
        if not within(step, threshold):  # once more: one stall of a shared machine is not the capacity
            step = await run_phase(session, url, bodies, f"step {rate:.0f}/s again", rate=rate,
                                   seconds=plan.step_s)
            steps.append(step)
            if not within(step, threshold):
                break
        capacity = rate
        rate *= plan.step_factor
    return capacity, steps


async def run(url: str, plan: Plan, *, seed: int = 7) -> dict[str, Any]:
    """All phases against ``url``; the JSON-able report."""
    texts = text_bodies(seed)
    connector = aiohttp.TCPConnector(limit=0)  # no client-side queue: open loop means every request goes out
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    fixed: list[Phase] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await run_phase(session, url, texts, "warm-up", rate=plan.low_rate, seconds=plan.warmup_s)
        unloaded = await run_phase(session, url, texts, "unloaded", rate=plan.low_rate, seconds=plan.unloaded_s)
        if plan.fixed_rate > 0:
            images = image_bodies(seed)
            fixed.append(await run_phase(session, url, texts, "text->image fixed", rate=plan.fixed_rate,
                                         seconds=plan.fixed_s))
            await run_phase(session, url, images, "image warm-up", rate=plan.low_rate, seconds=plan.warmup_s)
            fixed.append(await run_phase(session, url, images, "image->image unloaded", rate=plan.low_rate,
                                         seconds=plan.unloaded_s))
            fixed.append(await run_phase(session, url, images, "image->image fixed", rate=plan.fixed_rate,
                                         seconds=plan.fixed_s))
            await asyncio.sleep(1.0)
        base_p99 = unloaded.summary()["ok_p99_ms"] or 0.0
        threshold = threshold_of(plan, base_p99)
        capacity, steps = await _search(session, url, texts, plan, threshold)
        await asyncio.sleep(2.0)  # let the last step's queue drain before the overload starts
        overload = await run_phase(session, url, texts, "overload", rate=plan.factor * capacity,
                                   seconds=plan.duration_s)
    text_phases = [unloaded, *(p for p in fixed if p.name.startswith("text")), *steps]
    return {
        "url": url, "plan": asdict(plan), "threshold_ms": round(threshold, 1), "capacity_per_s": round(capacity, 1),
        "capacity_at_target_per_s": round(capacity_at(text_phases, plan.target_ms), 1),
        "unloaded": unloaded.summary(), "fixed": [p.summary() for p in fixed], "steps": [s.summary() for s in steps],
        "overload": overload.summary(),
    }


def table(report: dict[str, Any]) -> str:
    head = ("phase", "rate/s", "sent", "2xx", "429", "5xx", "other", "no answer", "p50 ms", "p99 ms",
            "429 p99 ms", "send lag p99")
    rows = [head]
    for p in [report["unloaded"], *report.get("fixed", []), *report["steps"], report["overload"]]:
        rows.append((p["name"], f"{p['rate']:.1f}", str(p["sent"]), str(p["ok"]), str(p["rejected_429"]),
                     str(p["errors_5xx"]), str(p["other_status"]), str(p["client_errors"]),
                     _ms(p["ok_p50_ms"]), _ms(p["ok_p99_ms"]), _ms(p["rejected_p99_ms"]), _ms(p["send_lag_p99_ms"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"capacity {report['capacity_per_s']:.1f}/s (p99 threshold {report['threshold_ms']:.0f} ms), "
                 f"{report['capacity_at_target_per_s']:.1f}/s within p99 {report['plan']['target_ms']:.0f} ms; "
                 f"overload at {report['overload']['rate']:.1f}/s: 429 reasons {report['overload']['reasons_429']}")
    return "\n".join(lines)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the gateway's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    p.add_argument("--seed", type=int, default=7, help="seed of the query texts and images")
    for name, default in asdict(Plan()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=default,
                       help=f"{HELP[name]} (default {default})")
    args = p.parse_args(argv)
    plan = Plan(**{name: getattr(args, name) for name in asdict(Plan())})
    report = asyncio.run(run(args.url, plan, seed=args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
