"""The `xmodal` command: the parser of every subcommand and the entry point (``xmodal = cli.main:main``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import demo, gateway, lag, migrate, publish, stack, tenants, worker
from cli import eval as eval_
from cli.command import Command, Handler
from services.errors import XmodalError

# In the order `xmodal --help` lists them.
COMMANDS: tuple[Command, ...] = (stack, worker, gateway, publish, lag, tenants, migrate, eval_, demo)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, every subcommand included."""
    parser = argparse.ArgumentParser(
        prog="xmodal",
        description="Real-time cross-modal retrieval: Kafka -> Faust -> CLIP-family embeddings -> Weaviate.\n"
        "Settings come from XMODAL_* environment variables (nested with __), e.g.\n"
        "  XMODAL_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092  XMODAL_SPACES__CLIP__NAME=openai/clip-vit-base-patch32",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; an XmodalError is printed as one line and exits 2, Ctrl-C exits 130."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except XmodalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
