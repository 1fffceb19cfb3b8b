"""The root of every error xmodal raises on purpose.

Retry code checks ``retriable``, never a list of types (the aiokafka way).
"""

from __future__ import annotations


class XmodalError(Exception):
    """Base class. ``retriable`` says whether trying the same thing later may succeed."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class TransientError(XmodalError):
    """A dependency is down, slow or overloaded; retry with backoff, never dead-letter.

    ``cause`` is a short label of what failed (``store_unreachable``, ``store_timeout``, ``store_overloaded``,
    ``store_error``, ``dead_letter``, ``overloaded``, ...): the worker's retry counter and /readyz use it.
    """

    retriable = True
    cause: str = "transient"

    def __init__(self, message: str, *, retriable: bool | None = None, cause: str | None = None) -> None:
        super().__init__(message, retriable=retriable)
        if cause is not None:
            self.cause = cause


class Overloaded(TransientError):
    """A bounded queue is full. The gateway answers 429; the worker pauses consumption."""

    cause = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(XmodalError):
    """Settings or files are missing or wrong; the message says what to change."""
