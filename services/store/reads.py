"""Weaviate results -> StoredAsset / StoredState / Hit, and SearchQuery -> Weaviate filters. No network."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from weaviate.classes.query import Filter
from weaviate.collections.classes.filters import FilterReturn

from services.store.errors import StoreError
from services.store.filters import to_weaviate
from services.store.models import Hit, MetadataValue, SearchQuery, StoredAsset, StoredState, asset_uuid
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
    return {name: [float(x) for x in v] for name, v in vector.items()}


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
    )


def stored_state(props: Mapping[str, Any], vector: Mapping[str, Any] | None) -> StoredState:
    return StoredState(
        asset_id=str(props["asset_id"]),
        event_time=_time(props, "event_time"),
        content_hash=str(props.get("content_hash") or ""),
        model_id=str(props.get("model_id") or ""),
        vectors=vectors_of(vector) if vector else {},
        caption_hash=str(props.get("caption_hash") or ""),
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


def hit(props: Mapping[str, Any], score: float) -> Hit:
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
    )
