"""`ClapEmbedder`: audio clips and texts in one space, over a transformers CLAP checkpoint.

It loads any checkpoint whose model has ``get_text_features`` and ``get_audio_features`` (``ClapModel``: the
LAION CLAP checkpoints, or the sounds model shipped in services/embedding/sounds/clap), by hub id or local
path, with its ``ClapProcessor`` (feature extractor + tokenizer). Vectors are (n, dim) float32 rows of unit
length, like `services.embedding.model.HFEmbedder`'s.

Clips are mono float32 arrays at the feature extractor's ``sampling_rate``, of any length. The model sees
one window of ``max_length_s`` seconds at a time (the feature extractor's ``nb_max_samples``):

- a clip of at most one window is given to the feature extractor as it is, which pads it as the checkpoint
  says (its ``padding``): "repeatpad" (LAION's: the clip repeated, then zeros) or "pad" (zeros only; the
  shipped sounds model, whose counts of beeps repetition would change);
- a longer clip is cut into windows that start every window length, the last one moved back to end where
  the clip ends (so every window is real audio, and a bit of it may be counted twice); its vector is the
  mean of the windows' unit vectors, normalised again. The feature extractor's own treatment of long clips
  (a random crop, or LAION's random "fusion" crops) is never used: it would make vectors random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from services.embedding.errors import ModalityNotSupported, ModelLoadError
from services.embedding.hf import AutoFeatureExtractor, AutoProcessor
from services.embedding.loading import (
    Vectors,
    load_advice,
    max_text_length,
    on_device,
    pinned,
    pooled_features,
    recorded_model_id,
    resolve_device,
    resolve_dtype,
    to_device,
    unit_rows,
)

Clip = npt.NDArray[np.float32]

_WINDOWS_PER_PASS = 64  # bounds the memory of one forward pass, whatever the length of the clips


class ClapEmbedder:
    """An `Embedder` of audio and texts over a CLAP checkpoint. Not thread-safe: use it from one thread.

    ``ClapEmbedder.from_pretrained(hub_id_or_dir, space="clap", device="cpu").embed_audio([clip])`` gives a
    (1, dim) float32 row of unit length; tests/unit/embedding/test_clap.py runs this on a tiny random CLAP
    and on the shipped sounds model. It has no image tower: ``embed_images`` raises `ModalityNotSupported`.
    """

    modalities: frozenset[str] = frozenset({"audio", "text"})

    def __init__(self, model: PreTrainedModel, feature_extractor: Any, tokenizer: Any, *, model_id: str,
                 space: str, device: str, dtype: torch.dtype) -> None:
        _check_audio_text_encoder(model, model_id)
        window = getattr(feature_extractor, "nb_max_samples", None)
        rate = getattr(feature_extractor, "sampling_rate", None)
        if not isinstance(window, int) or not isinstance(rate, int) or window < 1:
            raise ModelLoadError(f"{model_id!r}: its feature extractor ({type(feature_extractor).__name__}) gives no "
                                 "sampling_rate and nb_max_samples; a CLAP checkpoint's ClapFeatureExtractor does")
        self.model: Any = on_device(model, device, dtype)
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.text_kwargs: dict[str, Any] = {"padding": True, "truncation": True,
                                            "max_length": _max_text_length(model, tokenizer)}
        self.model_id = model_id
        self.space = space
        self.device = device
        self.dtype = dtype
        self.sampling_rate: int | None = rate
        self.window = window  # samples per window
        self.dim = 0
        self.dim = self._probe_dim()

    @classmethod
    def from_pretrained(cls, source: str | Path, *, space: str, device: str = "auto", dtype: str = "auto",
                        model_id: str | None = None, revision: str | None = None) -> ClapEmbedder:
        """Load a checkpoint (hub id or local directory, at ``revision`` when given); raises ModelLoadError with
        what to change. ``model_id`` (default: the source) is recorded with its revision (recorded_model_id)."""
        resolved = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, resolved)
        name = model_id or str(source)
        try:
            model = AutoModel.from_pretrained(str(source), **pinned(revision))
            _check_audio_text_encoder(model, name)
            feature_extractor, tokenizer = _load_processor(source, revision)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise ModelLoadError(load_advice(str(source), exc)) from exc
        return cls(model, feature_extractor, tokenizer, model_id=recorded_model_id(name, model, revision),
                   space=space, device=resolved, dtype=torch_dtype)

    def _probe_dim(self) -> int:
        # One tiny forward pass per tower at load time: a broken checkpoint fails at startup, not on the
        # first event, and the dimension comes from the model itself.
        text_dim = self.embed_texts(["a"]).shape[1]
        audio_dim = self.embed_audio([np.zeros(self.window // 4 + 1, dtype=np.float32)]).shape[1]
        if text_dim != audio_dim:
            raise ModelLoadError(
                f"{self.model_id!r} embeds texts in {text_dim} and audio in {audio_dim} dimensions: not one "
                "shared space. Set XMODAL_SPACES__<NAME>__NAME to a CLAP checkpoint."
            )
        return int(text_dim)

    def windows(self, clip: Clip) -> list[Clip]:
        """The windows the model sees of one clip (views, not copies): see the module's docstring."""
        n = len(clip)
        if n <= self.window:
            return [clip]
        starts = [min(i * self.window, n - self.window) for i in range(math.ceil(n / self.window))]
        return [clip[s : s + self.window] for s in starts]

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = self.tokenizer(list(texts), return_tensors="pt", **self.text_kwargs)
        inputs = to_device({k: v for k, v in encoded.items() if k != "token_type_ids"}, self.device, self.dtype)
        with torch.inference_mode():
            return unit_rows(pooled_features(self.model.get_text_features(**inputs)))

    def embed_audio(self, clips: Sequence[Clip]) -> Vectors:
        """Mono float32 clips at ``sampling_rate`` -> one unit row each (windowed as the module says).

        Raises ValueError for a clip that is empty, not one-dimensional, not floating point or not finite.
        """
        if not len(clips):
            return np.zeros((0, self.dim), dtype=np.float32)
        windows: list[Clip] = []
        owners: list[int] = []
        for i, clip in enumerate(clips):
            parts = self.windows(_checked(clip, i))
            windows.extend(parts)
            owners.extend([i] * len(parts))
        per_window = np.concatenate([self._embed_windows(windows[at : at + _WINDOWS_PER_PASS])
                                     for at in range(0, len(windows), _WINDOWS_PER_PASS)])
        sums = np.zeros((len(clips), per_window.shape[1]), dtype=np.float32)
        np.add.at(sums, np.asarray(owners), per_window)
        return unit_rows(torch.from_numpy(sums))

    def _embed_windows(self, windows: Sequence[Clip]) -> Vectors:
        features = self.feature_extractor(list(windows), sampling_rate=self.sampling_rate, return_tensors="pt")
        # No window is longer than the model's input, so none needs LAION's fusion; the feature extractor would
        # mark a random one as "longer" when none is, which makes fused checkpoints nondeterministic.
        is_longer = torch.zeros((len(windows), 1), dtype=torch.bool)
        inputs = to_device({"input_features": features["input_features"], "is_longer": is_longer},
                           self.device, self.dtype)
        with torch.inference_mode():
            return unit_rows(pooled_features(self.model.get_audio_features(**inputs)))

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        """Always raises `ModalityNotSupported`: a CLAP has no image tower."""
        raise ModalityNotSupported(self.model_id, "image", self.modalities)


def _checked(clip: Clip, index: int) -> Clip:
    samples = np.asarray(clip)
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"audio clip {index} has shape {samples.shape}: give mono clips of at least one sample "
                         "(mix stereo down before embedding)")
    if not np.issubdtype(samples.dtype, np.floating):
        raise ValueError(f"audio clip {index} is {samples.dtype}: give float samples in [-1, 1], not raw PCM")
    if not np.isfinite(samples).all():
        raise ValueError(f"audio clip {index} has NaN or infinite samples")
    return samples


def _check_audio_text_encoder(model: PreTrainedModel, model_id: str) -> None:
    for method in ("get_text_features", "get_audio_features"):
        if not callable(getattr(model, method, None)):
            raise ModelLoadError(
                f"{model_id!r} ({type(model).__name__}) has no {method}(): it is not an audio-text dual encoder. "
                "Set XMODAL_SPACES__<NAME>__NAME to a CLAP checkpoint."
            )


def _load_processor(source: str | Path, revision: str | None = None) -> tuple[Any, Any]:
    """(feature extractor, tokenizer): from the checkpoint's ClapProcessor, else loaded one by one."""
    try:
        processor = AutoProcessor.from_pretrained(str(source), **pinned(revision))
    except (OSError, ValueError, KeyError, TypeError):
        processor = None
    feature_extractor = getattr(processor, "feature_extractor", None)
    tokenizer = getattr(processor, "tokenizer", None)
    if feature_extractor is None or tokenizer is None:
        feature_extractor = AutoFeatureExtractor.from_pretrained(str(source), **pinned(revision))
        tokenizer = AutoTokenizer.from_pretrained(str(source), **pinned(revision))
    return feature_extractor, tokenizer


def _max_text_length(model: PreTrainedModel, tokenizer: Any) -> int:
    # CLAP's text tower is RoBERTa's: positions start after the padding id, so it takes
    # max_position_embeddings - pad_token_id - 1 tokens (512 of 514 for LAION's).
    pad = getattr(getattr(model.config, "text_config", model.config), "pad_token_id", None) or 0
    return max_text_length(model, tokenizer, default=512, reserved=pad + 1)
