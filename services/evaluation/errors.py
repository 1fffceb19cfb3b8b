"""Errors of the evaluation package, under one root (:class:`EvalError`, an XmodalError).

Each message says what to do next: the CLI prints it as one line and exits 2.
"""

from __future__ import annotations

from services.errors import XmodalError


class EvalError(XmodalError):
    """Anything that stops an evaluation."""


class LabelledSetError(EvalError):
    """A labelled set's files are missing or wrong; the message names the file, the line and the fix."""


class GatewayUnreachable(EvalError):
    """No connection to the gateway (refused, reset, name not found); trying later, once it runs, may work."""

    retriable = True


class GatewayRefused(EvalError):
    """The gateway answers, but not in a way an evaluation can use: a wrong API key, not ready, an option
    it does not know, or something that is not an xmodal gateway at all."""
