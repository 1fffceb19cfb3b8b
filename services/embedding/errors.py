"""Errors of the embedding package, under the roots in services.errors."""

from __future__ import annotations

from collections.abc import Iterable

from services.errors import ConfigError, TransientError


class ModelLoadError(ConfigError):
    """The configured model cannot be found or loaded; the message says which setting to change."""


class ModalityNotSupported(ConfigError):
    """A model was asked to embed a modality it has no tower for (audio for a CLIP, images for a CLAP).

    A configuration mistake, not a bad input: route each modality only to the spaces whose ``modalities``
    include it.
    """

    def __init__(self, model_id: str, modality: str, modalities: Iterable[str]) -> None:
        self.model_id, self.modality, self.modalities = model_id, modality, frozenset(modalities)
        super().__init__(
            f"model {model_id!r} embeds {' and '.join(sorted(self.modalities))}, not {modality}: send {modality} "
            f"to a space whose model takes it (e.g. a CLAP for audio, a CLIP for images)"
        )


class BatcherClosed(TransientError):
    """The query batcher was closed (the gateway is shutting down); another replica may answer."""
