"""GPU embedding throughput: CLIP ViT-B/32 and ViT-L/14 and the CLAP audio tower, model-only and end to end.

``python -m bench.gpu_embed [--tiny] [--json PATH] [--budget-s 480] [--compile] [--device auto|cuda|cpu]``

It needs no network: the models are built from transformers' config classes with the published
hyper-parameters (CLIP ViT-B/32: vision 768 wide, 12 layers, patch 32, 224 px; text 512 wide, 12 layers;
ViT-L/14: vision 1024 wide, 24 layers, patch 14; text 768 wide, 12 layers; CLAP: ``ClapConfig()``'s
defaults, which are laion/clap-htsat-unfused's HTSAT audio encoder) and random weights, so they cost the
FLOPs of the real ones. On a GPU they run in bf16 under ``torch.inference_mode``; on the CPU, or with
``--tiny``, tiny versions of the same architectures run in fp32 in a few seconds (the unit test does this).

Parts, each a batch-size sweep (warm-up, then timed iterations, each ended by ``torch.cuda.synchronize``):

- ``image-model``: the image tower on random pixels already on the device;
- ``image-decode``: JPEG bytes (made once, quality 90) decoded with torchvision's GPU decoder when it
  imports and works, else with PIL on CPU threads, then resized and normalised on the device, then the model;
- ``text-model``: the text tower on random token ids (77 tokens);
- ``audio-model``: the CLAP audio tower on random 10 s log-mel spectrograms (1001 x 64);
- ``project-image`` / ``project-text``: the project's own path, `services.embedding.model.HFEmbedder` over
  a saved random ViT-B/32 checkpoint (processor as services/embedding/shapes/train.py builds it, 224 px),
  ``embed_images`` on decoded PIL images and ``embed_texts`` on short captions: its overhead vs model-only.

FLOP/s: CLIP towers are counted analytically from the config (matmul FLOPs only, 2 per multiply-add:
per layer and token 2 * (4 d^2 + 2 d f) for QKV, output and MLP, plus 4 n d for the attention scores and
their use over n tokens; the patch embedding and the projection; layer norms, softmax and GELU left out).
The CLAP tower (Swin windows) is counted by ``torch.utils.flop_counter`` at batch 1, which also checks the
analytic counts. Peaks are dense bf16 figures from the vendors' sheets. The whole run keeps to
``--budget-s``: a sweep stops early, and says so, when the next step would not fit. Prints a table and
writes JSON (default bench/results/gpu_embed.json).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from transformers import ClapConfig, ClapModel, CLIPConfig, CLIPModel

RESULTS = Path(__file__).parent / "results"
CLIP_MEAN, CLIP_STD = [0.4815, 0.4578, 0.4082], [0.2686, 0.2613, 0.2758]
#: dense bf16 peak TFLOP/s by a piece of the device name (first match wins; H100 PCIe before H100 SXM)
PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0))
#: (part, model, images/s) the targets ask for, on H100/H200 only
TARGETS = (("image-model", "ViT-B/32", 25_000.0), ("image-decode", "ViT-B/32", 8_000.0),
           ("image-model", "ViT-L/14", 2_000.0))


def _tower(width: int, layers: int, heads: int, **extra: Any) -> dict[str, Any]:
    return {"hidden_size": width, "intermediate_size": 4 * width, "num_hidden_layers": layers,
            "num_attention_heads": heads, **extra}


@dataclass(frozen=True)
class Plan:
    """What one run measures: model configs, batch sizes and how long each measurement runs."""

    tiny: bool
    clip: dict[str, dict[str, Any]]  # model name -> CLIPConfig kwargs
    clap: dict[str, Any]  # ClapConfig kwargs; empty: its defaults (laion/clap-htsat-unfused)
    mel_frames: int
    mel_bins: int
    text_tokens: int
    batches: dict[tuple[str, str], tuple[int, ...]]  # (part, model) -> batch sizes
    warmup: int
    min_iters: int
    min_s: float


def full_plan() -> Plan:
    text = {"max_position_embeddings": 77, "vocab_size": 49408}
    clip = {
        "ViT-B/32": {"vision_config": _tower(768, 12, 12, patch_size=32, image_size=224),
                     "text_config": _tower(512, 12, 8, **text), "projection_dim": 512},
        "ViT-L/14": {"vision_config": _tower(1024, 24, 16, patch_size=14, image_size=224),
                     "text_config": _tower(768, 12, 12, **text), "projection_dim": 768},
    }
    batches = {("image-model", "ViT-B/32"): (64, 128, 256, 512, 1024, 2048),
               ("image-decode", "ViT-B/32"): (128, 256, 512, 1024),
               ("image-model", "ViT-L/14"): (32, 64, 128, 256, 512),
               ("text-model", "ViT-B/32"): (128, 512, 2048), ("text-model", "ViT-L/14"): (128, 512, 1024),
               ("audio-model", "CLAP-HTSAT"): (8, 16, 32, 64, 128),
               ("project-image", "ViT-B/32"): (64, 256), ("project-text", "ViT-B/32"): (256, 1024)}
    return Plan(False, clip, {}, 1001, 64, 77, batches, warmup=3, min_iters=5, min_s=1.0)


def tiny_plan() -> Plan:
    text = {"max_position_embeddings": 16, "vocab_size": 49408}
    clip = {
        "ViT-B/32": {"vision_config": _tower(32, 2, 2, patch_size=8, image_size=32),
                     "text_config": _tower(32, 2, 2, **text), "projection_dim": 16},
        "ViT-L/14": {"vision_config": _tower(48, 3, 2, patch_size=4, image_size=32),
                     "text_config": _tower(48, 2, 2, **text), "projection_dim": 24},
    }
    # tests/harness/tiny_models.py's tiny HTSAT: 63 frames of 16 mel bands folded into a 32 x 32 image
    audio = {"spec_size": 32, "num_mel_bins": 16, "window_size": 4, "patch_size": 4, "patch_stride": [4, 4],
             "patch_embeds_hidden_size": 16, "hidden_size": 32, "depths": [1, 1], "num_attention_heads": [2, 2],
             "enable_fusion": False}
    clap = {"audio_config": audio, "projection_dim": 16,
            "text_config": _tower(32, 2, 2, vocab_size=100, max_position_embeddings=20)}
    batches: dict[tuple[str, str], tuple[int, ...]] = dict.fromkeys(full_plan().batches, (2, 4))
    return Plan(True, clip, clap, 63, 16, 16, batches, warmup=1, min_iters=2, min_s=0.0)


class Budget:
    """The run's time budget: a step runs only when it is likely to end before the deadline."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.deadline = self.start + seconds
        self.skipped: list[str] = []

    def fits(self, estimate_s: float) -> bool:
        return time.perf_counter() + estimate_s <= self.deadline

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class Runner:
    """Runs the sweeps on one device and collects one row per (part, model, batch size)."""

    def __init__(self, plan: Plan, device: str, budget: Budget, *, compile_models: bool) -> None:
        self.plan, self.device, self.budget = plan, device, budget
        self.dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.compile_models = compile_models
        self.peak = peak_tflops(torch.cuda.get_device_name() if device == "cuda" else "")
        self.rows: list[dict[str, Any]] = []
        self.flops: dict[str, dict[str, Any]] = {}

    def free(self) -> None:
        """The last model's cached GPU memory back before the next model is built."""
        if self.device == "cuda":
            torch.cuda.empty_cache()

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def measure(self, fn: Callable[[], object]) -> tuple[int, float]:
        """(iterations, seconds) of ``fn`` after the warm-up; each iteration ends synchronised."""
        for _ in range(self.plan.warmup):
            fn()
        self.sync()
        iters, t0 = 0, time.perf_counter()
        while iters < self.plan.min_iters or time.perf_counter() - t0 < self.plan.min_s:
            fn()
            self.sync()
            iters += 1
        return iters, time.perf_counter() - t0

    def sweep(self, part: str, model: str, unit: str, flops_per_input: float | None,
              make: Callable[[int], Callable[[], object]]) -> None:
        """Time ``make(batch)()`` for each batch size of the plan, stopping early when the budget runs out."""
        last_s = 0.0
        for batch in self.plan.batches[(part, model)]:
            if not self.budget.fits(3 * last_s):  # the next batch is about twice the work, plus warm-up
                self.budget.skipped.append(f"{part} {model} batch {batch} and larger")
                return
            t0 = time.perf_counter()
            try:
                iters, seconds = self.measure(make(batch))
            except torch.cuda.OutOfMemoryError:
                self.budget.skipped.append(f"{part} {model} batch {batch} and larger (out of GPU memory)")
                torch.cuda.empty_cache()
                return
            last_s = time.perf_counter() - t0
            self.rows.append(self.row(part, model, unit, batch, iters=iters, seconds=seconds,
                                      flops_per_input=flops_per_input))

    def row(self, part: str, model: str, unit: str, batch: int, *, iters: int, seconds: float,
            flops_per_input: float | None) -> dict[str, Any]:
        per_s = batch * iters / seconds
        tflops = flops_per_input * per_s / 1e12 if flops_per_input else None
        return {"part": part, "model": model, "batch": batch, "per_s": per_s, "unit": unit,
                "ms_per_batch": seconds / iters * 1000, "iters": iters, "tflops": tflops,
                "peak_tflops": self.peak,
                "pct_of_peak": 100 * tflops / self.peak if tflops is not None and self.peak else None}

    def compiled(self, fn: Callable[[torch.Tensor], object]) -> Callable[[torch.Tensor], object]:
        return torch.compile(fn, dynamic=False) if self.compile_models else fn

    def count_flops(self, fn: Callable[[], object]) -> int:
        with FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a device by its name (``torch.cuda.get_device_name``); None when unknown."""
    return next((peak for key, peak in PEAK_TFLOPS if key in device_name), None)


def vit_flops(tower: dict[str, Any], tokens: int, projection: int) -> float:
    """Matmul FLOPs of one input through a ViT/text tower of ``tokens`` tokens, projection included."""
    d, f, layers = tower["hidden_size"], tower["intermediate_size"], tower["num_hidden_layers"]
    per_layer = 2 * tokens * (4 * d * d + 2 * d * f) + 4 * tokens * tokens * d
    return float(layers * per_layer + 2 * d * projection)


def image_flops(kwargs: dict[str, Any]) -> float:
    vision = kwargs["vision_config"]
    p, patches = vision["patch_size"], (vision["image_size"] // vision["patch_size"]) ** 2
    return float(vit_flops(vision, patches + 1, kwargs["projection_dim"])
                 + 2 * patches * 3 * p * p * vision["hidden_size"])


def text_flops(kwargs: dict[str, Any], tokens: int) -> float:
    return vit_flops(kwargs["text_config"], tokens, kwargs["projection_dim"])


def make_jpegs(n: int, size: int, *, seed: int = 0) -> list[bytes]:
    """``n`` photo-like JPEGs (smooth random colour fields plus grain), quality 90, ``size`` x ``size``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((size, size),
                                                                                         Image.Resampling.BICUBIC)
        pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (size, size, 3), dtype=np.int16)
        buf = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def gpu_jpeg_decoder(device: str) -> Callable[[list[torch.Tensor]], list[torch.Tensor]] | None:
    """torchvision's batched nvjpeg decode when it imports and decodes a test image here; else None."""
    if device != "cuda":
        return None
    try:
        from torchvision.io import decode_jpeg  # type: ignore[import-not-found]  # optional: GPU JPEG decode

        probe = torch.frombuffer(bytearray(make_jpegs(1, 16)[0]), dtype=torch.uint8)
        decode_jpeg([probe], device="cuda")
    except (ImportError, OSError, RuntimeError) as exc:  # missing, a build for another torch, no nvjpeg
        print(f"torchvision GPU JPEG decode unavailable ({type(exc).__name__}: {exc}); decoding with PIL")
        return None

    def decode(data: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(decode_jpeg(data, device="cuda"))

    return decode


def pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def preprocess(uint8: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> CLIP pixels: shortest edge to ``size`` (bicubic), centre crop, normalise."""
    h, w = uint8.shape[-2:]
    scale = size / min(h, w)
    x = uint8.float().div_(255)
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bicubic",
                          antialias=True, align_corners=False)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = x[..., top:top + size, left:left + size]
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)


def build_clip(r: Runner, kwargs: dict[str, Any]) -> Any:
    with torch.device(r.device):  # random init on the device: seconds for ViT-L/14 instead of a minute
        model: Any = CLIPModel(CLIPConfig(**kwargs))
    return model.to(dtype=r.dtype).train(False)


def bench_clip(r: Runner, name: str, kwargs: dict[str, Any], decoder_note: list[str]) -> None:
    model = build_clip(r, kwargs)
    size, tokens = kwargs["vision_config"]["image_size"], r.plan.text_tokens
    vocab = kwargs["text_config"]["vocab_size"]
    image_fn = r.compiled(lambda x: model.get_image_features(pixel_values=x))
    text_fn = r.compiled(lambda ids: model.get_text_features(input_ids=ids))
    with torch.inference_mode():
        one = torch.randn(1, 3, size, size, device=r.device, dtype=r.dtype)
        ids = torch.randint(0, vocab, (1, tokens), device=r.device)
        r.flops[name] = {"image": image_flops(kwargs), "text": text_flops(kwargs, tokens),
                         "image_counted": r.count_flops(lambda: model.get_image_features(pixel_values=one)),
                         "text_counted": r.count_flops(lambda: model.get_text_features(input_ids=ids)),
                         "method": "analytic matmul FLOPs from the config (counted: torch.utils.flop_counter)"}

        def image_model(batch: int) -> Callable[[], object]:
            x = torch.randn(batch, 3, size, size, device=r.device, dtype=r.dtype)
            return lambda: image_fn(x)

        def text_model(batch: int) -> Callable[[], object]:
            ids = torch.randint(0, vocab, (batch, tokens), device=r.device)
            return lambda: text_fn(ids)

        r.sweep("image-model", name, "images/s", r.flops[name]["image"], image_model)
        if ("image-decode", name) in r.plan.batches:
            bench_decode(r, name, size, image_fn, decoder_note)
        r.sweep("text-model", name, "texts/s", r.flops[name]["text"], text_model)


def bench_decode(r: Runner, name: str, size: int, image_fn: Callable[[torch.Tensor], object],
                 decoder_note: list[str]) -> None:
    jpegs = make_jpegs(64 if r.plan.tiny else 256, size)
    gpu_decode = gpu_jpeg_decoder(r.device)
    threads = os.cpu_count() or 1
    decoder_note.append("torchvision.io.decode_jpeg on the GPU" if gpu_decode else f"PIL on {threads} CPU threads")
    pool = ThreadPoolExecutor(threads)  # PIL releases the GIL while it decodes
    encoded = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in jpegs]

    def decode_model(batch: int) -> Callable[[], object]:
        picks = [i % len(jpegs) for i in range(batch)]

        def run() -> object:
            if gpu_decode is not None:
                uint8 = torch.stack(gpu_decode([encoded[i] for i in picks]))
            else:
                arrays = list(pool.map(pil_decode, [jpegs[i] for i in picks]))
                host = torch.from_numpy(np.stack(arrays))  # (B, H, W, 3)
                if r.device == "cuda":
                    host = host.pin_memory().to(r.device, non_blocking=True)
                uint8 = host.permute(0, 3, 1, 2)
            return image_fn(preprocess(uint8, size, r.dtype))

        return run

    try:
        r.sweep("image-decode", name, "images/s", r.flops[name]["image"], decode_model)
    finally:
        pool.shutdown()


def bench_clap(r: Runner) -> None:
    with torch.device(r.device):
        model: Any = ClapModel(ClapConfig(**r.plan.clap))
    model = model.to(dtype=r.dtype).train(False)
    audio_fn = r.compiled(lambda x: model.get_audio_features(input_features=x))
    shape = (1, r.plan.mel_frames, r.plan.mel_bins)
    with torch.inference_mode():
        one = torch.randn(1, *shape, device=r.device, dtype=r.dtype)
        flops = r.count_flops(lambda: model.get_audio_features(input_features=one))
        r.flops["CLAP-HTSAT"] = {"audio": flops, "method": "torch.utils.flop_counter at batch 1"}

        def audio_model(batch: int) -> Callable[[], object]:
            x = torch.randn(batch, *shape, device=r.device, dtype=r.dtype)
            return lambda: audio_fn(x)

        r.sweep("audio-model", "CLAP-HTSAT", "clips/s", flops, audio_model)


def save_checkpoint(r: Runner, kwargs: dict[str, Any], workdir: Path) -> Path:
    """A random ViT-B/32 saved like a hub checkpoint, with a CLIPProcessor built as shapes/train.py does."""
    from services.embedding import vocab
    from services.embedding.hf import AutoImageProcessor, CLIPProcessor

    tok = vocab.clip_tokenizer(["a photo of a red circle", "a blue square", "some green star"],
                               max_length=r.plan.text_tokens)
    text = {**kwargs["text_config"], "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id}
    CLIPModel(CLIPConfig(**{**kwargs, "text_config": text})).save_pretrained(str(workdir))
    size = kwargs["vision_config"]["image_size"]
    config = {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": size},
              "crop_size": {"height": size, "width": size}, "do_center_crop": True, "resample": 3,
              "image_mean": CLIP_MEAN, "image_std": CLIP_STD}
    (workdir / "preprocessor_config.json").write_text(json.dumps(config, indent=2))
    processor = CLIPProcessor(image_processor=AutoImageProcessor.from_pretrained(str(workdir)), tokenizer=tok)
    processor.save_pretrained(str(workdir))
    return workdir


def bench_project(r: Runner, name: str, kwargs: dict[str, Any]) -> None:
    from services.embedding.model import HFEmbedder

    if not r.budget.fits(30 if not r.plan.tiny else 0):  # saving and loading the checkpoint takes a while
        r.budget.skipped.append(f"project-image / project-text {name}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        emb = HFEmbedder.from_pretrained(save_checkpoint(r, kwargs, Path(tmp)), space="bench", device=r.device)
    size = kwargs["vision_config"]["image_size"]
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in make_jpegs(64 if r.plan.tiny else 256, size)]
    captions = [f"a photo of a red circle number {i}" for i in range(1024)]

    def project_image(batch: int) -> Callable[[], object]:
        picked = [images[i % len(images)] for i in range(batch)]
        return lambda: emb.embed_images(picked)

    def project_text(batch: int) -> Callable[[], object]:
        return lambda: emb.embed_texts(captions[:batch])

    tokens = emb.preprocessor.texts(captions[:4])["input_ids"].shape[1]
    r.sweep("project-image", name, "images/s", image_flops(kwargs), project_image)
    r.sweep("project-text", name, "texts/s", text_flops(kwargs, tokens), project_text)


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "transformers": transformers.__version__, "cpu_count": os.cpu_count(),
                            "platform": platform.platform(), "device": device}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),  # type: ignore[no-untyped-call]
                    driver=_driver_version())
    return info


def _driver_version() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def targets(rows: Sequence[dict[str, Any]], device: str, tiny: bool) -> dict[str, Any]:
    """Each target met or not, on H100/H200 only (the figures are for those chips at full size)."""
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    if device != "cuda":
        return {"applicable": False, "reason": "not applicable on cpu", "checks": []}
    if tiny:
        return {"applicable": False, "reason": "not applicable with --tiny", "checks": []}
    if "H100" not in name and "H200" not in name:
        return {"applicable": False, "reason": f"not applicable on {name} (the targets are for H100/H200)",
                "checks": []}
    checks = []
    for part, model, want in TARGETS:
        best = max((row["per_s"] for row in rows if (row["part"], row["model"]) == (part, model)), default=None)
        checks.append({"part": part, "model": model, "target_per_s": want, "best_per_s": best,
                       "met": best is not None and best >= want})
    return {"applicable": True, "reason": None, "checks": checks}


def _cell(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None else ""


def print_report(report: dict[str, Any]) -> None:
    m, s = report["machine"], report["settings"]
    print(f"\n{m.get('gpu', 'cpu')} | torch {m['torch']} | transformers {m['transformers']} | "
          f"{s['dtype']} | compile {s['compile']} | image decode: {s['decode'] or 'not run'}")
    print(f"{'part':14} {'model':11} {'batch':>6} {'per s':>11} {'unit':9} {'ms/batch':>9} {'TFLOP/s':>8} "
          f"{'peak':>6} {'%peak':>6}")
    for row in report["rows"]:
        print(f"{row['part']:14} {row['model']:11} {row['batch']:>6} {row['per_s']:>11,.1f} {row['unit']:9} "
              f"{row['ms_per_batch']:>9.2f} {_cell(row['tflops'], '8.2f'):>8} "
              f"{_cell(row['peak_tflops'], '6.0f'):>6} {_cell(row['pct_of_peak'], '6.1f'):>6}")
    t = report["targets"]
    if not t["applicable"]:
        print(f"targets: {t['reason']}")
    for check in t["checks"]:
        best = _cell(check["best_per_s"], ",.0f") or "not measured"
        print(f"target {check['part']} {check['model']} >= {check['target_per_s']:,.0f}/s: best {best} -> "
              f"{'met' if check['met'] else 'NOT MET'}")
    b = report["budget"]
    print(f"{b['elapsed_s']:.1f} s of a {b['budget_s']:.0f} s budget"
          + (f"; stopped early, left out: {'; '.join(b['skipped'])}" if b["skipped"] else ""))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_embed", description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models, batches 2 and 4 (always so on a CPU)")
    parser.add_argument("--json", type=Path, default=RESULTS / "gpu_embed.json", help="where to write the JSON")
    parser.add_argument("--budget-s", type=float, default=480.0, help="total time budget; sweeps stop early")
    parser.add_argument("--compile", action="store_true", help="torch.compile the towers (compile time counts)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="auto: cuda if present")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no GPU here; run on a GPU machine or pass --device cpu")
    tiny = args.tiny or device == "cpu"
    plan = tiny_plan() if tiny else full_plan()
    torch.manual_seed(0)
    runner = Runner(plan, device, budget, compile_models=args.compile)
    decoder: list[str] = []
    for name, kwargs in plan.clip.items():
        bench_clip(runner, name, kwargs, decoder)
        runner.free()
    bench_clap(runner)
    runner.free()
    bench_project(runner, "ViT-B/32", plan.clip["ViT-B/32"])
    report = {
        "machine": machine(device),
        "settings": {"tiny": tiny, "dtype": str(runner.dtype).removeprefix("torch."), "compile": args.compile,
                     "decode": decoder[0] if decoder else None, "inference_mode": True,
                     "timing": f"{plan.warmup} warm-up, then >= {plan.min_iters} iterations and >= {plan.min_s} s, "
                               "each synchronised"},
        "flops_per_input": runner.flops,
        "rows": runner.rows,
        "targets": targets(runner.rows, device, tiny),
        "budget": {"budget_s": args.budget_s, "elapsed_s": budget.elapsed(), "stopped_early": bool(budget.skipped),
                   "skipped": budget.skipped},
    }
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
