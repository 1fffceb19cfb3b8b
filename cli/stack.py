"""`xmodal stack`: install, start, stop or inspect the local Kafka + Weaviate."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "stack", help="install, start, stop or inspect the local Kafka + Weaviate",
        description="The local stack: Apache Kafka (KRaft) and Weaviate on 127.0.0.1, installed into "
        "~/.cache/xmodal (XMODAL_CACHE_DIR); data, logs and pid files go to "
        "~/.local/state/xmodal/stack (XMODAL_STATE_DIR).",
    )
    p.add_argument("action", choices=["install", "up", "down", "status"],
                   help="install: fetch the Kafka jars and build weaviate-server (cached); up: start or "
                   "restart what is down; down: stop, leaving no process; status: health (exit 1 when unhealthy)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
