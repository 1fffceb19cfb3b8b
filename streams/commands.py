"""Subcommands of `xmodal` beyond `stack`, registered into streams.cli at import."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from streams.cli import _REGISTRARS

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def _worker(args: argparse.Namespace) -> int:
    from services.config import WorkerSettings
    from streams.worker import run_worker

    run_worker(WorkerSettings())
    return 0


def _publish(args: argparse.Namespace) -> int:
    from services.config import WorkerSettings
    from streams.publishing import publish_source

    return asyncio.run(publish_source(args, WorkerSettings().kafka))


def _register(sub: Sub) -> None:
    p = sub.add_parser(
        "worker", help="consume `assets`, embed, write Weaviate, dead-letter bad events",
        description="Runs the ingest worker (a Faust app, one consumer group). Start more workers to scale "
        "out, up to the number of partitions. Serves /metrics on XMODAL_WEB_PORT (6066).",
    )
    p.set_defaults(handler=_worker)

    p = sub.add_parser(
        "publish", help="publish asset events from a JSONL file, a folder, or the shapes sample set",
        description="Publishes events to the `assets` topic (key = asset_id). SOURCE is a JSONL file with one "
        "AssetEvent per line (see schemas/asset_event.schema.json) or a folder of images and .txt files "
        "(asset_id = relative path, metadata from a sidecar <file>.json).",
    )
    p.add_argument("source", nargs="?", type=Path, help="JSONL file or folder")
    p.add_argument("--sample", metavar="NAME", choices=["shapes"],
                   help="publish a built-in sample set instead of SOURCE (shapes: 120 assets)")
    p.add_argument("--per-class", type=int, default=4, help="images per colour/shape pair for --sample shapes")
    p.add_argument("--wait", action="store_true",
                   help="wait until the worker has stored everything published (read-your-writes)")
    p.add_argument("--timeout", type=float, default=120.0, help="longest --wait, seconds")
    p.set_defaults(handler=_publish)


_REGISTRARS.append(_register)


def _demo_register(sub: Sub) -> None:
    def _demo(args: argparse.Namespace) -> int:
        from streams.demo import run_demo, stop_demo

        return stop_demo() if args.stop else run_demo()

    p = sub.add_parser(
        "demo", help="worker + gateway in the background, publish the shapes sample, show what is searchable",
        description="Expects the local stack up (make up). Starts the worker and the gateway as background "
        "processes (logs in ~/.local/state/xmodal/demo), publishes the shapes sample set, waits until it is "
        "indexed and prints sample searches. --stop stops the worker and the gateway.",
    )
    p.add_argument("--stop", action="store_true", help="stop the demo's worker and gateway")
    p.set_defaults(handler=_demo)


_REGISTRARS.append(_demo_register)


def _gateway(args: argparse.Namespace) -> int:
    from services.config import GatewaySettings
    from services.gateway.server import run_gateway

    run_gateway(GatewaySettings())
    return 0


def _lag(args: argparse.Namespace) -> int:
    from services.config import WorkerSettings
    from streams.lagview import show_lag

    return asyncio.run(show_lag(WorkerSettings().kafka, watch=args.watch, as_json=args.json,
                                interval_s=args.interval))


def _ops_register(sub: Sub) -> None:
    p = sub.add_parser(
        "gateway", help="serve the search API, the search page (/) and the status page (/status)",
        description="Runs the aiohttp gateway on XMODAL_HOST:XMODAL_PORT (127.0.0.1:8000). API keys, "
        "limits and CORS are settings (XMODAL_API_KEYS, XMODAL_MAX_CONCURRENCY, XMODAL_CORS_ORIGINS...).",
    )
    p.set_defaults(handler=_gateway)
    p = sub.add_parser(
        "lag", help="per-partition lag of the worker group (table, --watch, --json)",
        description="Reads end offsets and the worker group's committed offsets from Kafka. Because the "
        "worker commits only after storing, lag = events not yet searchable.",
    )
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between --watch refreshes")
    p.set_defaults(handler=_lag)


_REGISTRARS.append(_ops_register)

if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `xmodal` command")
