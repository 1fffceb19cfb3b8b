"""Errors of the embedding package, under the roots in services.errors."""

from __future__ import annotations

from services.errors import ConfigError, TransientError


class ModelLoadError(ConfigError):
    """The configured model cannot be found or loaded; the message says which setting to change."""


class BatcherClosed(TransientError):
    """The query batcher was closed (the gateway is shutting down); another replica may answer."""
