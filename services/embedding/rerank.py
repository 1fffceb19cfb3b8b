"""The cross-encoder of the gateway's re-ranking: an image-text matching model scores (image, text) pairs.

`CrossEncoder` loads a BLIP image-text retrieval checkpoint (``BlipForImageTextRetrieval``, e.g.
``Salesforce/blip-itm-base-coco``) by hub id or local path and answers, for each pair, the probability of
its ITM head that the text describes the image. Unlike a dual encoder it reads image and text together
(cross-attention), so it cannot precompute anything per asset: every pair is one forward pass. The gateway
(services.gateway.rerank) runs it on the device's inference thread, a batch of pairs per call; the
bi-encoder re-ranker needs nothing here, it is an `Embedder` of a larger model of the same family.

tests/unit/embedding/test_rerank.py runs it on tiny random weights (tests.harness.tiny_models).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from transformers import AutoConfig, BlipForImageTextRetrieval

from services.embedding.errors import ModelLoadError
from services.embedding.hf import AutoProcessor
from services.embedding.loading import load_advice, max_text_length, on_device, resolve_device, resolve_dtype, to_device

__all__ = ["CrossEncoder", "Scores"]

Scores = npt.NDArray[np.float32]

_FAMILIES = frozenset({"blip"})
_MATCH = 1  # the ITM head's classes: 0 = no match, 1 = match
_ADVICE = ("Set XMODAL_RERANK__MODEL to a BLIP image-text retrieval checkpoint (BlipForImageTextRetrieval, e.g. "
           "Salesforce/blip-itm-base-coco, or a local directory holding one), or XMODAL_RERANK__KIND=biencoder.")


class CrossEncoder:
    """(image, text) pairs -> match probabilities in [0, 1]. Calls block; not thread-safe: use one thread.

    ``CrossEncoder.from_pretrained(hub_id_or_dir, device="cpu").match([image], ["a red circle"])`` gives a
    (1,) float32 array.
    """

    def __init__(self, model: BlipForImageTextRetrieval, processor: Any, *, model_id: str, device: str,
                 dtype: torch.dtype) -> None:
        self.model: Any = on_device(model, device, dtype)
        self.processor = processor
        self.model_id = model_id
        self.device = device
        self.dtype = dtype
        self.max_text_length = _max_text_length(self.model, processor)

    @classmethod
    def from_pretrained(cls, source: str | Path, *, device: str = "auto", dtype: str = "auto",
                        model_id: str | None = None) -> CrossEncoder:
        """Load a checkpoint (hub id or local directory); raises ModelLoadError with what to change."""
        resolved = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, resolved)
        model_id = model_id or str(source)
        try:
            family = str(AutoConfig.from_pretrained(str(source)).model_type)
            if family not in _FAMILIES:
                raise ModelLoadError(f"{model_id!r} is a {family!r} checkpoint, not an image-text matching "
                                     f"model. {_ADVICE}")
            model = BlipForImageTextRetrieval.from_pretrained(str(source))
            processor = AutoProcessor.from_pretrained(str(source))
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise ModelLoadError(f"{load_advice(str(source), exc)} {_ADVICE}") from exc
        if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
            raise ModelLoadError(f"{model_id!r} has no BLIP processor (tokenizer + image processor). {_ADVICE}")
        return cls(model, processor, model_id=model_id, device=resolved, dtype=torch_dtype)

    def match(self, images: Sequence[Image.Image], texts: Sequence[str]) -> Scores:
        """The probability that ``texts[i]`` describes ``images[i]``, for each i: shape (n,), float32."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images and {len(texts)} texts: give one text per image")
        if not images:
            return np.zeros((0,), dtype=np.float32)
        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        encoded = self.processor(images=rgb, text=list(texts), return_tensors="pt", padding=True,
                                 truncation=True, max_length=self.max_text_length)
        inputs = to_device({k: v for k, v in encoded.items() if k != "token_type_ids"}, self.device, self.dtype)
        with torch.inference_mode():
            logits = self.model(**inputs, use_itm_head=True).itm_score
            probs = torch.softmax(logits.float(), dim=-1)[:, _MATCH]
        scores: Scores = probs.cpu().numpy().astype(np.float32, copy=False)
        return scores


def _max_text_length(model: Any, processor: Any) -> int:
    return max_text_length(model, processor.tokenizer, default=35)  # BLIP's captions were trained at 35 tokens
