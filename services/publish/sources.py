"""Where `xmodal publish` gets events: a JSONL file, a folder of images and texts, or the shapes sample set."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from schemas.asset_event import AssetEvent
from services.errors import ConfigError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
TEXT_SUFFIXES = frozenset({".txt", ".md"})
INLINE_LIMIT = 700 * 1024  # Kafka's default max message is 1 MiB; base64 adds a third


def from_jsonl(path: Path) -> Iterator[AssetEvent]:
    """One event per line; a bad line stops with its line number (validate before anything is sent)."""
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield AssetEvent.model_validate_json(line)
            except ValidationError as exc:
                raise ConfigError(f"{path}:{n}: not a valid asset event: {exc.errors()[0]['msg']}") from exc


def from_folder(root: Path, *, now: datetime | None = None) -> Iterator[AssetEvent]:
    """Images and texts under ``root``; asset_id = relative path; metadata from a sidecar ``<file>.json``.

    Images up to 700 KiB travel inline (base64); larger ones as file:// URIs, which the worker reads only
    under its XMODAL_FETCH__FILE_ROOTS.
    """
    when = now or datetime.now(UTC)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES | TEXT_SUFFIXES:
            continue
        meta_file = path.with_name(path.name + ".json")
        metadata = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        common = {"schema_version": 1, "asset_id": path.relative_to(root).as_posix(), "op": "upsert",
                  "metadata": metadata, "event_time": when}
        if suffix in TEXT_SUFFIXES:
            yield AssetEvent.model_validate({**common, "modality": "text", "text": path.read_text()})
        elif path.stat().st_size <= INLINE_LIMIT:
            data = base64.b64encode(path.read_bytes()).decode()
            yield AssetEvent.model_validate({**common, "modality": "image", "data": data})
        else:
            yield AssetEvent.model_validate({**common, "modality": "image", "uri": path.resolve().as_uri()})


def shapes_sample(per_class: int = 4, *, seed: int = 2026, now: datetime | None = None) -> list[AssetEvent]:
    """The demo catalogue: per_class images of each of the 24 colour/shape pairs plus one text each.

    Every asset carries metadata color, shape, category (= shape) and split, so filters can use them.
    """
    from services.embedding.shapes import COLORS, SHAPES, canonical_caption, generate_balanced

    when = now or datetime.now(UTC)
    events = []
    for i, s in enumerate(generate_balanced(per_class, seed=seed, split="val")):
        buf = io.BytesIO()
        s.image.save(buf, format="PNG")
        events.append(AssetEvent.model_validate({
            "schema_version": 1, "asset_id": f"shape-{s.color}-{s.shape}-{i:04d}", "op": "upsert",
            "modality": "image", "data": base64.b64encode(buf.getvalue()).decode(), "event_time": when,
            "metadata": {"color": s.color, "shape": s.shape, "category": s.shape, "split": s.split},
        }))
    for color in COLORS:
        for shape in SHAPES:
            events.append(AssetEvent.model_validate({
                "schema_version": 1, "asset_id": f"text-{color}-{shape}", "op": "upsert", "modality": "text",
                "text": canonical_caption(color, shape), "event_time": when,
                "metadata": {"color": color, "shape": shape, "category": shape, "split": "val"},
            }))
    return events
