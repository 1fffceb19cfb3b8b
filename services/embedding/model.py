"""The model interface (`Embedder`), its image + text implementation (`HFEmbedder`), and `load_embedder`.

`HFEmbedder` loads any dual encoder of transformers that has ``get_text_features`` and
``get_image_features`` (CLIP, SigLIP, SigLIP2, OpenCLIP checkpoints converted to the HF format), by hub id
or local path; `services.embedding.clap.ClapEmbedder` does the same for audio + text (CLAP). Vectors come
back as (n, dim) float32 rows of unit length, so cosine similarity is a dot product and the modalities of
one model share one space. `load_embedder` picks the class from the checkpoint's ``model_type``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from services.config import BUILTIN_LARGE_MODEL, BUILTIN_MODEL, BUILTIN_SOUNDS_MODEL, ModelSettings
from services.embedding.clap import ClapEmbedder
from services.embedding.errors import ModalityNotSupported, ModelLoadError
from services.embedding.hf import AutoImageProcessor, AutoProcessor
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

__all__ = [
    "SHAPES_LARGE_MODEL_DIR", "SHAPES_MODEL_DIR", "SOUNDS_MODEL_DIR", "ClapEmbedder", "Embedder", "HFEmbedder",
    "Vectors", "builtin_model_dir", "load_embedder", "load_preprocessor", "model_family", "pooled_features",
    "resolve_device", "resolve_dtype", "set_cpu_threads", "text_kwargs",
]

SHAPES_MODEL_DIR = Path(__file__).parent / "shapes" / "clip"
SHAPES_LARGE_MODEL_DIR = Path(__file__).parent / "shapes" / "clip_large"
SOUNDS_MODEL_DIR = Path(__file__).parent / "sounds" / "clap"
_BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class _Builtin:
    """A model shipped in this package: where it lives and the module that trains it again."""

    directory: Path
    trainer: str


_BUILTINS: Mapping[str, _Builtin] = MappingProxyType({
    BUILTIN_MODEL: _Builtin(SHAPES_MODEL_DIR, "services.embedding.shapes.train"),
    BUILTIN_LARGE_MODEL: _Builtin(SHAPES_LARGE_MODEL_DIR, "services.embedding.shapes.train --size large"),
    BUILTIN_SOUNDS_MODEL: _Builtin(SOUNDS_MODEL_DIR, "services.embedding.sounds.train"),
})
# Families whose checkpoints embed audio and text (get_audio_features + get_text_features).
_AUDIO_TEXT_FAMILIES = frozenset({"clap"})

# Families trained on text padded to a fixed length: their text tower pools the last position, so the
# transformers docs call them with padding="max_length" ("as that's how the model was trained").
_FIXED_LENGTH_TEXT = frozenset({"siglip", "siglip2"})


@runtime_checkable
class Embedder(Protocol):
    """Inputs of the model's ``modalities`` -> (n, dim) float32 L2-normalised vectors of one space. Calls block.

    ``modalities`` is a subset of {"image", "text", "audio"}: {"image", "text"} for a CLIP-family model,
    {"audio", "text"} for a CLAP. Asking for another modality raises `ModalityNotSupported` (a ConfigError).
    Audio clips are mono float32 arrays at ``sampling_rate`` Hz (None for models without an audio tower),
    of any length.
    """

    model_id: str
    space: str
    dim: int
    device: str
    modalities: frozenset[str]
    sampling_rate: int | None

    def embed_texts(self, texts: Sequence[str]) -> Vectors: ...

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors: ...

    def embed_audio(self, clips: Sequence[npt.NDArray[np.float32]]) -> Vectors: ...


class _Preprocessor:
    """Texts/images -> model inputs, through the checkpoint's processor or its tokenizer + image processor."""

    def __init__(self, tokenizer: Any, image_processor: Any, text_kwargs: Mapping[str, Any]) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.text_kwargs = dict(text_kwargs)

    def texts(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(list(texts), return_tensors="pt", **self.text_kwargs)
        # CLIP-family text towers take no segment ids; some tokenizers return them anyway.
        return {k: v for k, v in encoded.items() if k != "token_type_ids"}

    def images(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        return dict(self.image_processor(images=rgb, return_tensors="pt"))


def text_kwargs(model_type: str, max_length: int) -> dict[str, Any]:
    """How a family expects its text padded: SigLIP to a fixed length, CLIP to the longest in the batch."""
    padding: str | bool = "max_length" if model_type in _FIXED_LENGTH_TEXT else True
    return {"padding": padding, "truncation": True, "max_length": max_length}


def _max_text_length(model: PreTrainedModel, tokenizer: Any) -> int:
    return max_text_length(model, tokenizer, default=77)


def load_preprocessor(source: str | Path, model: PreTrainedModel, revision: str | None = None) -> _Preprocessor:
    """AutoProcessor when the checkpoint has one, else AutoTokenizer + AutoImageProcessor."""
    try:
        processor = AutoProcessor.from_pretrained(str(source), **pinned(revision))
    except (OSError, ValueError, KeyError, TypeError):
        processor = None
    tokenizer = getattr(processor, "tokenizer", None)
    image_processor = getattr(processor, "image_processor", None)
    if tokenizer is None or image_processor is None:
        # No processor config (or an incomplete one): load the two halves on their own.
        tokenizer = AutoTokenizer.from_pretrained(str(source), **pinned(revision))
        image_processor = AutoImageProcessor.from_pretrained(str(source), **pinned(revision))
    kwargs = text_kwargs(str(model.config.model_type), _max_text_length(model, tokenizer))
    return _Preprocessor(tokenizer, image_processor, kwargs)


class HFEmbedder:
    """An `Embedder` of images and texts over a transformers dual encoder. Not thread-safe: use it from one thread.

    ``HFEmbedder.from_pretrained(hub_id_or_dir, space="clip", device="cpu").embed_texts(["a red circle"])``
    gives a (1, dim) float32 row of unit length; tests/unit/embedding/test_model.py runs this on tiny random
    CLIP and SigLIP checkpoints. It has no audio tower: ``embed_audio`` raises `ModalityNotSupported`.
    """

    modalities: frozenset[str] = frozenset({"image", "text"})
    sampling_rate: int | None = None

    def __init__(self, model: PreTrainedModel, preprocessor: _Preprocessor, *, model_id: str, space: str,
                 device: str, dtype: torch.dtype) -> None:
        _check_dual_encoder(model, model_id)
        self.model: Any = on_device(model, device, dtype)
        self.preprocessor = preprocessor
        self.model_id = model_id
        self.space = space
        self.device = device
        self.dtype = dtype
        self.dim = 0
        self.dim = self._probe_dim()

    @classmethod
    def from_pretrained(cls, source: str | Path, *, space: str, device: str = "auto", dtype: str = "auto",
                        model_id: str | None = None, revision: str | None = None) -> HFEmbedder:
        """Load a checkpoint (hub id or local directory, at ``revision`` when given); raises ModelLoadError with
        what to change. ``model_id`` (default: the source) is recorded with its revision, see recorded_model_id."""
        resolved = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, resolved)
        name = model_id or str(source)
        try:
            model = AutoModel.from_pretrained(str(source), **pinned(revision))
            _check_dual_encoder(model, name)
            preprocessor = load_preprocessor(source, model, revision)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise ModelLoadError(load_advice(str(source), exc)) from exc
        return cls(model, preprocessor, model_id=recorded_model_id(name, model, revision), space=space,
                   device=resolved, dtype=torch_dtype)

    def _probe_dim(self) -> int:
        # One tiny forward pass per tower at load time: a broken checkpoint fails at startup, not on the
        # first event, and the dimension comes from the model itself whatever its config calls it.
        text_dim = self.embed_texts(["a"]).shape[1]
        image_dim = self.embed_images([Image.new("RGB", (32, 32))]).shape[1]
        if text_dim != image_dim:
            raise ModelLoadError(
                f"{self.model_id!r} embeds texts in {text_dim} and images in {image_dim} dimensions: "
                "not one shared space. Set XMODAL_SPACES__<NAME>__NAME to a CLIP-family checkpoint."
            )
        return int(text_dim)

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = to_device(self.preprocessor.texts(texts), self.device, self.dtype)
        with torch.inference_mode():
            return unit_rows(pooled_features(self.model.get_text_features(**inputs)))

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = to_device(self.preprocessor.images(images), self.device, self.dtype)
        with torch.inference_mode():
            return unit_rows(pooled_features(self.model.get_image_features(**inputs)))

    def embed_audio(self, clips: Sequence[npt.NDArray[np.float32]]) -> Vectors:
        """Always raises `ModalityNotSupported`: a CLIP-family model has no audio tower."""
        raise ModalityNotSupported(self.model_id, "audio", self.modalities)


def _check_dual_encoder(model: PreTrainedModel, model_id: str) -> None:
    for method in ("get_text_features", "get_image_features"):
        if not callable(getattr(model, method, None)):
            raise ModelLoadError(
                f"{model_id!r} ({type(model).__name__}) has no {method}(): it is not a CLIP-family dual "
                "encoder. Set XMODAL_SPACES__<NAME>__NAME to a CLIP, SigLIP or SigLIP2 checkpoint."
            )


def builtin_model_dir(name: str = BUILTIN_MODEL) -> Path:
    """Where a shipped model (``builtin:shapes-clip``, ``builtin:sounds-clap``) lives; ModelLoadError if absent."""
    if name not in _BUILTINS:
        raise ModelLoadError(f"unknown builtin model {name!r}: set XMODAL_SPACES__<NAME>__NAME to one of "
                             f"{sorted(_BUILTINS)}, a local checkpoint directory or a hub id")
    builtin = _BUILTINS[name]
    if not (builtin.directory / "config.json").is_file():
        raise ModelLoadError(
            f"the shipped model {name!r} is missing from {builtin.directory}; rebuild it with "
            f"`python -m {builtin.trainer} --out {builtin.directory}` or set XMODAL_SPACES__<NAME>__NAME."
        )
    return builtin.directory


def model_family(source: str | Path, revision: str | None = None) -> str:
    """The checkpoint's ``model_type`` (``clip``, ``siglip``, ``clap``, ...), read from its config only."""
    try:
        return str(AutoConfig.from_pretrained(str(source), **pinned(revision)).model_type)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(load_advice(str(source), exc)) from exc


def set_cpu_threads(threads: int) -> None:
    """Threads torch uses within one CPU forward pass, for the whole process (threads started later included);
    0 leaves torch's default (one per core)."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def load_embedder(settings: ModelSettings) -> HFEmbedder | ClapEmbedder:
    """The configured model: a `ClapEmbedder` for audio + text checkpoints (CLAP), else an `HFEmbedder`.

    ``builtin:shapes-clip`` and ``builtin:sounds-clap`` are the models shipped in this package.
    """
    name = settings.name
    source: str | Path = builtin_model_dir(name) if name.startswith(_BUILTIN_PREFIX) else name
    if model_family(source, settings.revision) in _AUDIO_TEXT_FAMILIES:
        return ClapEmbedder.from_pretrained(source, space=settings.space, device=settings.device,
                                            dtype=settings.dtype, model_id=name, revision=settings.revision)
    return HFEmbedder.from_pretrained(source, space=settings.space, device=settings.device, dtype=settings.dtype,
                                      model_id=name, revision=settings.revision)
