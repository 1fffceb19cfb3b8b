"""The model interface (`Embedder`) and its transformers implementation (`HFEmbedder`).

`HFEmbedder` loads any dual encoder of transformers that has ``get_text_features`` and
``get_image_features`` (CLIP, SigLIP, SigLIP2, OpenCLIP checkpoints converted to the HF format), by hub id
or local path. Vectors come back as (n, dim) float32 rows of unit length, so cosine similarity is a dot
product and texts and images of one model share one space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from services.config import BUILTIN_MODEL, ModelSettings
from services.embedding.errors import ModelLoadError
from services.embedding.hf import AutoImageProcessor, AutoProcessor

Vectors = npt.NDArray[np.float32]

SHAPES_MODEL_DIR = Path(__file__).parent / "shapes" / "clip"

# Families trained on text padded to a fixed length: their text tower pools the last position, so the
# transformers docs call them with padding="max_length" ("as that's how the model was trained").
_FIXED_LENGTH_TEXT = frozenset({"siglip", "siglip2"})
_UNBOUNDED_LENGTH = 1_000_000  # tokenizers without a limit report a huge model_max_length
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@runtime_checkable
class Embedder(Protocol):
    """Texts and images -> (n, dim) float32 L2-normalised vectors of one embedding space. Calls block."""

    model_id: str
    space: str
    dim: int
    device: str

    def embed_texts(self, texts: Sequence[str]) -> Vectors: ...

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors: ...


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an explicit GPU must be visible."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but torch sees no GPU: set XMODAL_MODEL__DEVICE "
                             "to auto or cpu, or check the driver and the torch build")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` -> bf16 on a GPU, fp32 on the CPU (CPU half precision is slow and lossy)."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: set XMODAL_MODEL__DTYPE to auto or one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def pooled_features(output: object) -> torch.Tensor:
    """The embedding from ``get_*_features``: a tensor in transformers 4.x, an output object in 5.x.

    In 5.x the projected embedding is the output's ``pooler_output`` (the first element of its tuple form).
    """
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None and isinstance(output, tuple) and len(output) > 1:
        pooled = output[1]
    if not isinstance(pooled, torch.Tensor):
        raise TypeError(f"cannot find the embedding in a {type(output).__name__}")
    return pooled


def _normalise(features: torch.Tensor) -> Vectors:
    vectors = torch.nn.functional.normalize(features.float(), dim=-1)
    return vectors.cpu().numpy().astype(np.float32, copy=False)


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
    text_config = getattr(model.config, "text_config", model.config)
    limits = [getattr(text_config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    usable = [int(n) for n in limits if isinstance(n, int) and 0 < n < _UNBOUNDED_LENGTH]
    return min(usable) if usable else 77


def load_preprocessor(source: str | Path, model: PreTrainedModel) -> _Preprocessor:
    """AutoProcessor when the checkpoint has one, else AutoTokenizer + AutoImageProcessor."""
    try:
        processor = AutoProcessor.from_pretrained(str(source))
    except (OSError, ValueError, KeyError, TypeError):
        processor = None
    tokenizer = getattr(processor, "tokenizer", None)
    image_processor = getattr(processor, "image_processor", None)
    if tokenizer is None or image_processor is None:
        # No processor config (or an incomplete one): load the two halves on their own.
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        image_processor = AutoImageProcessor.from_pretrained(str(source))
    kwargs = text_kwargs(str(model.config.model_type), _max_text_length(model, tokenizer))
    return _Preprocessor(tokenizer, image_processor, kwargs)


class HFEmbedder:
    """An `Embedder` over a transformers dual encoder. Not thread-safe: use it from one thread.

    ``HFEmbedder.from_pretrained(hub_id_or_dir, space="clip", device="cpu").embed_texts(["a red circle"])``
    gives a (1, dim) float32 row of unit length; tests/unit/embedding/test_model.py runs this on tiny random
    CLIP and SigLIP checkpoints.
    """

    def __init__(self, model: PreTrainedModel, preprocessor: _Preprocessor, *, model_id: str, space: str,
                 device: str, dtype: torch.dtype) -> None:
        _check_dual_encoder(model, model_id)
        moved: Any = model  # PreTrainedModel.to is decorated in a way mypy cannot follow
        self.model: Any = moved.to(device=device, dtype=dtype).train(False)
        self.preprocessor = preprocessor
        self.model_id = model_id
        self.space = space
        self.device = device
        self.dtype = dtype
        self.dim = 0
        self.dim = self._probe_dim()

    @classmethod
    def from_pretrained(cls, source: str | Path, *, space: str, device: str = "auto", dtype: str = "auto",
                        model_id: str | None = None) -> HFEmbedder:
        """Load a checkpoint (hub id or local directory); raises ModelLoadError with what to change."""
        resolved = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, resolved)
        model_id = model_id or str(source)
        try:
            model = AutoModel.from_pretrained(str(source))
            _check_dual_encoder(model, model_id)
            preprocessor = load_preprocessor(source, model)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise ModelLoadError(_load_advice(str(source), exc)) from exc
        return cls(model, preprocessor, model_id=model_id, space=space, device=resolved, dtype=torch_dtype)

    def _probe_dim(self) -> int:
        # One tiny forward pass per tower at load time: a broken checkpoint fails at startup, not on the
        # first event, and the dimension comes from the model itself whatever its config calls it.
        text_dim = self.embed_texts(["a"]).shape[1]
        image_dim = self.embed_images([Image.new("RGB", (32, 32))]).shape[1]
        if text_dim != image_dim:
            raise ModelLoadError(
                f"{self.model_id!r} embeds texts in {text_dim} and images in {image_dim} dimensions: "
                "not one shared space. Set XMODAL_MODEL__NAME to a CLIP-family checkpoint."
            )
        return int(text_dim)

    def _to_device(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            k: v.to(self.device, dtype=self.dtype) if v.is_floating_point() else v.to(self.device)
            for k, v in inputs.items()
        }

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = self._to_device(self.preprocessor.texts(texts))
        with torch.inference_mode():
            return _normalise(pooled_features(self.model.get_text_features(**inputs)))

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = self._to_device(self.preprocessor.images(images))
        with torch.inference_mode():
            return _normalise(pooled_features(self.model.get_image_features(**inputs)))


def _check_dual_encoder(model: PreTrainedModel, model_id: str) -> None:
    for method in ("get_text_features", "get_image_features"):
        if not callable(getattr(model, method, None)):
            raise ModelLoadError(
                f"{model_id!r} ({type(model).__name__}) has no {method}(): it is not a CLIP-family dual "
                "encoder. Set XMODAL_MODEL__NAME to a CLIP, SigLIP or SigLIP2 checkpoint."
            )


def _load_advice(source: str, exc: BaseException) -> str:
    hint = (
        "Set XMODAL_MODEL__NAME to a local directory holding a transformers checkpoint (config.json, the "
        "weights, tokenizer and processor files), or to a hub id when huggingface.co is reachable "
        f"(this machine may have no network); '{BUILTIN_MODEL}' is the small model shipped with xmodal."
    )
    if isinstance(exc, ImportError):
        hint = f"Install the package the checkpoint needs (e.g. sentencepiece for SigLIP). {hint}"
    return f"cannot load model {source!r}: {type(exc).__name__}: {exc}. {hint}"


def builtin_model_dir() -> Path:
    """Where the shipped shapes model lives; ModelLoadError when it is not there."""
    if not (SHAPES_MODEL_DIR / "config.json").is_file():
        raise ModelLoadError(
            f"the shipped model {BUILTIN_MODEL!r} is missing from {SHAPES_MODEL_DIR}; rebuild it with "
            f"`python -m services.embedding.shapes.train --out {SHAPES_MODEL_DIR}` or set XMODAL_MODEL__NAME."
        )
    return SHAPES_MODEL_DIR


def load_embedder(settings: ModelSettings) -> HFEmbedder:
    """The configured model; ``builtin:shapes-clip`` is the shapes model shipped in this package."""
    source: str | Path = builtin_model_dir() if settings.name == BUILTIN_MODEL else settings.name
    return HFEmbedder.from_pretrained(source, space=settings.space, device=settings.device,
                                      dtype=settings.dtype, model_id=settings.name)
