"""The interface every subcommand module has: ``add_parser(subparsers)`` adds its parser and sets ``handler``.

A handler takes the parsed arguments and returns the exit status. cli.main imports the subcommand modules
and lists them; they import nothing of cli.main, so there is no import circle and no registry to fill.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from typing import TypeAlias

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

Handler = Callable[[argparse.Namespace], int]


class Command(Protocol):
    """A subcommand module (modules implement protocols through their functions)."""

    def add_parser(self, subparsers: Subparsers) -> None: ...
