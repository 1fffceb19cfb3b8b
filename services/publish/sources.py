"""Where `xmodal publish` gets events from: a JSONL file or a folder of images and texts."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from schemas.asset_event import AssetEvent
from services.errors import ConfigError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
TEXT_SUFFIXES = frozenset({".txt", ".md"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"})
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
    """Images, audio clips and texts under ``root``; asset_id = relative path; metadata from ``<file>.json``.

    Images and clips up to 700 KiB travel inline (base64); larger ones as file:// URIs, which the worker reads only
    under its XMODAL_FETCH__FILE_ROOTS.
    """
    when = now or datetime.now(UTC)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES | TEXT_SUFFIXES | AUDIO_SUFFIXES:
            continue
        meta_file = path.with_name(path.name + ".json")
        metadata = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        common = {"schema_version": 1, "asset_id": path.relative_to(root).as_posix(), "op": "upsert",
                  "metadata": metadata, "event_time": when}
        if suffix in TEXT_SUFFIXES:
            yield AssetEvent.model_validate({**common, "modality": "text", "text": path.read_text()})
            continue
        modality = "audio" if suffix in AUDIO_SUFFIXES else "image"
        if path.stat().st_size <= INLINE_LIMIT:
            data = base64.b64encode(path.read_bytes()).decode()
            yield AssetEvent.model_validate({**common, "modality": modality, "data": data})
        else:
            yield AssetEvent.model_validate({**common, "modality": modality, "uri": path.resolve().as_uri()})

