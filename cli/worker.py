"""`xmodal worker`: the ingest worker (the Faust app of streams/)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "worker", help="consume `assets`, embed, write Weaviate, dead-letter bad events",
        description="Runs the ingest worker (a Faust app, one consumer group, XMODAL_KAFKA__GROUP_ID). Start "
        "more workers to scale out, up to the number of partitions. Its embedding spaces are XMODAL_SPACES "
        "(default: the shipped shapes CLIP and, for audio, the sounds CLAP). Serves /metrics on "
        "XMODAL_WEB_HOST:XMODAL_WEB_PORT (127.0.0.1:6066).",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.config import WorkerSettings
    from streams.worker import run_worker

    run_worker(WorkerSettings())
    return 0
