"""bench/gpu_embed.py runs end to end at its tiny size on the CPU: every part measured, targets left out.

The figures themselves mean nothing here (tiny random models, 2 shared cores): this checks that each code
path the GPU run takes, except the GPU-only decode, runs and reports, so the script works when a GPU machine
finally runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.gpu_embed import main, peak_tflops

PARTS = {
    ("image-model", "ViT-B/32"), ("image-model", "ViT-L/14"), ("image-decode", "ViT-B/32"),
    ("text-model", "ViT-B/32"), ("text-model", "ViT-L/14"), ("audio-model", "CLAP-HTSAT"),
    ("project-image", "ViT-B/32"), ("project-text", "ViT-B/32"),
}


def test_tiny_run_measures_every_part_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu_embed.json"
    returned = main(["--tiny", "--device", "cpu", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report == json.loads(json.dumps(returned))
    rows = report["rows"]
    assert {(r["part"], r["model"]) for r in rows} == PARTS
    for row in rows:
        assert row["batch"] in (2, 4)
        assert row["per_s"] > 0, row
        assert row["tflops"] > 0, row
        assert row["peak_tflops"] is None, row  # no peak for a CPU
    assert report["targets"] == {"applicable": False, "reason": "not applicable on cpu", "checks": []}
    assert report["settings"]["tiny"] is True
    assert report["settings"]["dtype"] == "float32"
    assert report["settings"]["decode"].startswith("PIL on ")  # the CPU fallback of the GPU JPEG decoder
    assert report["budget"]["stopped_early"] is False
    assert report["machine"]["cpu_count"] >= 1
    for model, flops in report["flops_per_input"].items():
        if model.startswith("ViT"):  # the analytic counts agree with torch's own counter
            assert flops["image"] == flops["image_counted"] > 0
            assert flops["text"] == flops["text_counted"] > 0
        else:
            assert flops["audio"] > 0


def test_a_spent_budget_stops_the_sweeps_and_says_so(tmp_path: Path) -> None:
    report = main(["--tiny", "--device", "cpu", "--budget-s", "0", "--json", str(tmp_path / "r.json")])
    assert report["rows"] == []
    assert report["budget"]["stopped_early"] is True
    assert any("image-model ViT-B/32" in s for s in report["budget"]["skipped"])


def test_peaks_by_device_name() -> None:
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("NVIDIA GeForce GTX 1080") is None
