"""Weaviate results -> StoredAsset / StoredState / Hit, and SearchQuery -> Weaviate filters. No network."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np
from weaviate.classes.query import Filter
from weaviate.collections.classes.filters import FilterReturn

from services.store.errors import StoreError
from services.store.filters import to_weaviate
from services.store.models import (
    Hit,
    MetadataValue,
    SearchQuery,
    SegmentMatch,
    StoredAsset,
    StoredState,
    asset_uuid,
)
from services.store.schema import SchemaView


def search_filter(q: SearchQuery, schema: SchemaView) -> FilterReturn | None:
    """The user's filter AND the modality target AND the excluded assets, or None when there is none."""
    parts: list[FilterReturn] = []
    if q.filters is not None:
        parts.append(to_weaviate(q.filters, schema))
    if q.target != "any":
        parts.append(Filter.by_property("modality").equal(q.target))
    if q.exclude_ids:
        parts.append(Filter.by_id().contains_none([asset_uuid(a) for a in q.exclude_ids]))
    return Filter.all_of(parts) if parts else None


def metadata_of(props: Mapping[str, Any]) -> dict[str, MetadataValue]:
    raw = props.get("metadata_json")
    if not raw:
        return {}
    return cast(dict[str, MetadataValue], json.loads(raw))


def _time(props: Mapping[str, Any], name: str) -> datetime:
    value = props.get(name)
    if not isinstance(value, datetime):
        # Only objects written by something else than this store lack these; say so instead of guessing.
        raise StoreError(f"object {props.get('asset_id')!r} has no {name}: not written by xmodal")
    return value


def vectors_of(vector: Mapping[str, Any]) -> dict[str, list[float]]:
    """The single vectors of an object (a video's multi-vectors are :func:`multi_vectors_of`)."""
    return {name: [float(x) for x in v] for name, v in vector.items() if not _is_multi(v)}


def multi_vectors_of(vector: Mapping[str, Any]) -> dict[str, list[list[float]]]:
    return {name: [[float(x) for x in row] for row in v] for name, v in vector.items() if _is_multi(v)}


def _is_multi(v: Any) -> bool:
    return len(v) > 0 and isinstance(v[0], list | tuple)


def segment_matches(props: Mapping[str, Any], segments: Sequence[Sequence[float]] | None,
                    query: Sequence[float] | None) -> tuple[SegmentMatch, ...]:
    """A video's segments with their cosine to ``query`` (unit vectors: the dot product), best first; in time
    order with score 0 when there are no vectors to score."""
    starts, ends = props.get("segment_starts") or [], props.get("segment_ends") or []
    if segments and query is not None and len(segments) == len(starts):
        scores = np.asarray(segments, dtype=np.float32) @ np.asarray(query, dtype=np.float32)
        order = sorted(range(len(starts)), key=lambda i: (-float(scores[i]), i))
        return tuple(SegmentMatch(i, float(starts[i]), float(ends[i]), float(scores[i])) for i in order)
    return tuple(SegmentMatch(i, float(s), float(e), 0.0) for i, (s, e) in enumerate(zip(starts, ends, strict=False)))


def stored_asset(props: Mapping[str, Any], spaces: Sequence[str]) -> StoredAsset:
    return StoredAsset(
        asset_id=str(props["asset_id"]),
        modality=str(props.get("modality") or ""),
        text=props.get("text"),
        uri=props.get("uri"),
        metadata=metadata_of(props),
        content_hash=str(props.get("content_hash") or ""),
        model_id=str(props.get("model_id") or ""),
        event_time=_time(props, "event_time"),
        indexed_at=_time(props, "indexed_at"),
        source_partition=int(props.get("source_partition") or 0),
        source_offset=int(props.get("source_offset") or 0),
        has_thumbnail=bool(props.get("has_thumbnail")),
        spaces=tuple(sorted(spaces)),
        caption=props.get("caption"),
        segments=tuple(zip((float(t) for t in props.get("segment_starts") or []),
                           (float(t) for t in props.get("segment_ends") or []), strict=False)),
        duration_s=float(props["duration_s"]) if props.get("duration_s") is not None else None,
        has_playback=bool(props.get("has_playback")),
    )


def stored_state(props: Mapping[str, Any], vector: Mapping[str, Any] | None) -> StoredState:
    return StoredState(
        asset_id=str(props["asset_id"]),
        event_time=_time(props, "event_time"),
        content_hash=str(props.get("content_hash") or ""),
        model_id=str(props.get("model_id") or ""),
        vectors=vectors_of(vector) if vector else {},
        caption_hash=str(props.get("caption_hash") or ""),
        segments=multi_vectors_of(vector) if vector else {},
    )


def rest_state(body: Mapping[str, Any]) -> StoredState:
    """The state in a REST object (``GET /v1/objects/{class}/{id}``): dates come as RFC 3339 text there."""
    props = dict(body.get("properties") or {})
    for name in ("event_time", "indexed_at"):
        if isinstance(props.get(name), str):
            props[name] = parse_rfc3339(props[name])
    return stored_state(props, body.get("vectors") or None)


def parse_rfc3339(text: str) -> datetime:
    """Weaviate's date text, down to microseconds (it may write nanoseconds).

    >>> parse_rfc3339("2026-12-02T08:00:01.123456789Z").isoformat()
    '2026-12-02T08:00:01.123456+00:00'
    >>> parse_rfc3339("2026-12-02T09:00:00+01:00").isoformat()
    '2026-12-02T09:00:00+01:00'
    """
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:min(digits, 6)] + rest[digits:]
    return datetime.fromisoformat(head + dot + rest)


def hit(props: Mapping[str, Any], score: float, segments: tuple[SegmentMatch, ...] = ()) -> Hit:
    return Hit(
        asset_id=str(props["asset_id"]),
        score=score,
        modality=str(props.get("modality") or ""),
        metadata=metadata_of(props),
        text=props.get("text"),
        uri=props.get("uri"),
        has_thumbnail=bool(props.get("has_thumbnail")),
        event_time=_time(props, "event_time"),
        indexed_at=_time(props, "indexed_at"),
        content_hash=str(props.get("content_hash") or ""),
        caption=props.get("caption"),
        segments=segments,
        duration_s=float(props["duration_s"]) if props.get("duration_s") is not None else None,
        has_playback=bool(props.get("has_playback")),
    )
