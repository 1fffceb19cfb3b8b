"""The `xmodal` command line. Each subcommand imports what it needs only when it runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from services.errors import XmodalError

Handler = Callable[[argparse.Namespace], int]


def _stack(args: argparse.Namespace) -> int:
    from services.localstack import LocalStack

    stack = LocalStack()
    if args.action == "install":
        stack.install()
        print("Kafka jars and weaviate-server are installed in", stack.s.cache_dir)
    elif args.action == "up":
        for st in stack.up():
            print(st.line())
    elif args.action == "down":
        stopped = stack.down()
        print("stopped:", ", ".join(stopped) if stopped else "nothing was running")
    else:
        statuses = stack.status()
        for st in statuses:
            print(st.line())
        return 0 if all(s.healthy for s in statuses) else 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xmodal",
        description="Real-time cross-modal retrieval: Kafka -> Faust -> CLIP-family embeddings -> Weaviate.\n"
        "Settings come from XMODAL_* environment variables (nested with __), e.g.\n"
        "  XMODAL_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092  XMODAL_MODEL__NAME=openai/clip-vit-base-patch32",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("stack", help="install, start, stop or inspect the local Kafka + Weaviate",
                       description="The local stack: Apache Kafka (KRaft) and Weaviate on 127.0.0.1, "
                       "installed into ~/.cache/xmodal, data in ~/.local/state/xmodal/stack.")
    p.add_argument("action", choices=["install", "up", "down", "status"],
                   help="install: fetch/build (cached); up: start or restart what is down; "
                   "down: stop, leaving no process; status: health (exit 1 when unhealthy)")
    p.set_defaults(handler=_stack)

    for register in _REGISTRARS:
        register(sub)
    return parser


# Subcommands defined in other modules register here (keeps this file small).
_REGISTRARS: list[Callable[[Any], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    from streams import commands  # noqa: F401  (registers the remaining subcommands)

    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except XmodalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

