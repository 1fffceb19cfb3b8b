"""What every transformers embedder here shares: device and dtype resolution, the embedding inside a
``get_*_features`` output, unit-length float32 rows, and the advice that goes with a failed load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from services.config import BUILTIN_MODEL, BUILTIN_SOUNDS_MODEL
from services.embedding.errors import ModelLoadError

Vectors = npt.NDArray[np.float32]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an explicit GPU must be visible."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but torch sees no GPU: set XMODAL_SPACES__<NAME>__DEVICE "
                             "to auto or cpu, or check the driver and the torch build")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` -> bf16 on a GPU, fp32 on the CPU (CPU half precision is slow and lossy)."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: set XMODAL_SPACES__<NAME>__DTYPE to auto or one of "
                             f"{sorted(_DTYPES)}")
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


def unit_rows(features: torch.Tensor) -> Vectors:
    """(n, dim) features -> float32 numpy rows of unit length."""
    vectors = torch.nn.functional.normalize(features.float(), dim=-1)
    return vectors.cpu().numpy().astype(np.float32, copy=False)


UNBOUNDED_LENGTH = 1_000_000  # tokenizers without a limit report a huge model_max_length


def on_device(model: object, device: str, dtype: torch.dtype) -> Any:
    """A loaded model moved to ``device`` and ``dtype``, in inference mode (what every wrapper here holds)."""
    moved: Any = model  # PreTrainedModel.to is decorated in a way mypy cannot follow
    return moved.to(device=device, dtype=dtype).train(False)


def max_text_length(model: Any, tokenizer: Any, *, default: int, reserved: int = 0) -> int:
    """The longest text both the text tower (its ``max_position_embeddings``, less ``reserved`` positions) and
    the tokenizer (``model_max_length``) take; ``default`` when neither says."""
    text_config = getattr(model.config, "text_config", model.config)
    positions = getattr(text_config, "max_position_embeddings", None)
    limits = [positions - reserved if isinstance(positions, int) else None,
              getattr(tokenizer, "model_max_length", None)]
    usable = [int(n) for n in limits if isinstance(n, int) and 0 < n < UNBOUNDED_LENGTH]
    return min(usable) if usable else default


def to_device(inputs: Mapping[str, torch.Tensor], device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Model inputs moved to ``device``; floating ones (pixels, spectrograms) also cast to the model's dtype."""
    return {k: v.to(device, dtype=dtype) if v.is_floating_point() else v.to(device) for k, v in inputs.items()}


def load_advice(source: str, exc: BaseException) -> str:
    """The message of a ModelLoadError: what failed, and which setting to change."""
    hint = (
        "Set XMODAL_SPACES__<NAME>__NAME to a local directory holding a transformers checkpoint (config.json, the "
        "weights, tokenizer and processor files), or to a hub id when huggingface.co is reachable "
        f"(this machine may have no network); '{BUILTIN_MODEL}' (images + texts) and '{BUILTIN_SOUNDS_MODEL}' "
        "(audio + texts) are the small models shipped with xmodal."
    )
    if isinstance(exc, ImportError):
        hint = f"Install the package the checkpoint needs (e.g. sentencepiece for SigLIP). {hint}"
    return f"cannot load model {source!r}: {type(exc).__name__}: {exc}. {hint}"


def pinned(revision: str | None) -> dict[str, str]:
    """``from_pretrained``'s ``revision`` argument when one is set (a hub branch, tag or commit), else nothing."""
    return {"revision": revision} if revision else {}


def recorded_model_id(name: str, model: Any, revision: str | None) -> str:
    """The model id stored with every vector: the configured name, with the checkpoint's revision when there is
    one: the hub commit transformers resolved, else the revision asked for. A local directory or a builtin
    model has none, so its name alone identifies it (as it did before revisions were recorded).

    >>> from types import SimpleNamespace as NS
    >>> recorded_model_id("openai/clip-vit-base-patch32", NS(config=NS(_commit_hash="3d74acf9")), None)
    'openai/clip-vit-base-patch32@3d74acf9'
    >>> recorded_model_id("/models/clip", NS(config=NS(_commit_hash=None)), "v2")
    '/models/clip@v2'
    >>> recorded_model_id("builtin:shapes-clip", NS(config=NS(_commit_hash=None)), None)
    'builtin:shapes-clip'
    """
    rev = getattr(model.config, "_commit_hash", None) or revision
    return f"{name}@{rev}" if rev else name
