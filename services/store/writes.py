"""Turning AssetObjects into Weaviate objects, and sorting batch results into per-asset failures.

Everything here is pure (no network): the store calls it around its gRPC batch calls.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from weaviate.classes.data import DataObject

from services.store.errors import MetadataTypeConflict, StoreUnavailable, UnknownTenant, WriteRejected
from services.store.failures import cause_of_message, is_tenant_not_found, is_transient_message
from services.store.models import AssetObject, VideoSegments, asset_uuid
from services.store.schema import (
    PropKind,
    SchemaView,
    kind_of,
    meta_property,
    property_value,
    valid_metadata_key,
)

WeaviateObject = DataObject[dict[str, Any], None]


def wanted_properties(upserts: Sequence[AssetObject]) -> dict[str, PropKind]:
    """Metadata properties the batch needs, with the type of the first value seen for each."""
    wanted: dict[str, PropKind] = {}
    for obj in upserts:
        for key, value in obj.metadata.items():
            kind = kind_of(value)
            if kind is not None and valid_metadata_key(key):
                wanted.setdefault(meta_property(key), kind)
    return wanted


def to_weaviate_object(
    obj: AssetObject, schema: SchemaView, spaces: Mapping[str, int], now: Callable[[], datetime]
) -> WeaviateObject:
    """The Weaviate object of ``obj``; WriteRejected (e.g. MetadataTypeConflict) when it cannot be stored."""
    if obj.event_time.tzinfo is None:
        raise WriteRejected(obj.asset_id, "event_time has no time zone")
    indexed_at = obj.indexed_at or now()
    props: dict[str, Any] = {
        "asset_id": obj.asset_id,
        "modality": obj.modality,
        "text": obj.text,
        "caption": obj.caption,
        "uri": obj.uri,
        "content_hash": obj.content_hash,
        "caption_hash": obj.caption_hash,
        "model_id": obj.model_id,
        "event_time": obj.event_time,
        "indexed_at": indexed_at,
        "source_partition": obj.source_partition,
        "source_offset": obj.source_offset,
        "has_thumbnail": obj.thumbnail is not None,
        "thumbnail": base64.b64encode(obj.thumbnail).decode("ascii") if obj.thumbnail is not None else None,
        # The exact metadata, for round trips: meta_* properties hold numbers as floats.
        "metadata_json": json.dumps(obj.metadata, ensure_ascii=False, separators=(",", ":")),
    }
    props.update(_metadata_properties(obj, schema))
    vectors: dict[str, Any] = dict(_vectors(obj, spaces, schema.vectors))
    video = obj.segments
    props |= {"segment_starts": None, "segment_ends": None, "duration_s": None, "has_playback": False,
              "playback": None, "playback_mime": None}
    if video is not None:
        vectors |= _segment_vectors(obj.asset_id, video, spaces)
        props |= {
            "segment_starts": [float(t) for t in video.starts], "segment_ends": [float(t) for t in video.ends],
            "duration_s": float(video.duration_s), "has_playback": video.playback is not None,
            "playback": base64.b64encode(video.playback).decode("ascii") if video.playback is not None else None,
            "playback_mime": video.playback_mime,
        }
    return DataObject(properties=props, uuid=asset_uuid(obj.asset_id), vector=vectors)


def _segment_vectors(asset_id: str, video: VideoSegments, spaces: Mapping[str, int]) -> dict[str, list[list[float]]]:
    """A video's multi-vectors, each with one vector per segment of the configured dimension."""
    if not video.starts or len(video.starts) != len(video.ends):
        raise WriteRejected(asset_id, f"a video needs as many segment starts as ends, at least one "
                            f"({len(video.starts)} starts, {len(video.ends)} ends)")
    out: dict[str, list[list[float]]] = {}
    for name, vectors in video.vectors.items():
        if name not in spaces:
            raise WriteRejected(asset_id, f"vector space {name!r} is not configured ({sorted(spaces)})")
        if len(vectors) != len(video.starts):
            raise WriteRejected(asset_id, f"{name} has {len(vectors)} vectors for {len(video.starts)} segments")
        for vector in vectors:
            if len(vector) != spaces[name]:
                raise WriteRejected(asset_id, f"{name} vector has {len(vector)} dimensions, not {spaces[name]}")
            if not all(math.isfinite(x) for x in vector):
                raise WriteRejected(asset_id, f"{name} vector has NaN or infinite values")
        out[name] = [list(v) for v in vectors]
    return out


def _metadata_properties(obj: AssetObject, schema: SchemaView) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for key, value in obj.metadata.items():
        if not valid_metadata_key(key):
            raise WriteRejected(obj.asset_id, f"metadata key {key!r} is not an identifier")
        kind = kind_of(value)
        if kind is None:
            raise WriteRejected(obj.asset_id, f"metadata {key!r}: unsupported value {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise WriteRejected(obj.asset_id, f"metadata {key!r}: {value} is not a finite number")
        name = meta_property(key)
        stored = schema.properties.get(name)
        if stored is None:
            raise WriteRejected(obj.asset_id, f"metadata {key!r}: Weaviate did not accept property {name!r}")
        if stored is not kind:
            raise MetadataTypeConflict(
                obj.asset_id, f"metadata {key!r} holds {stored.value} values; got {kind.value} {value!r}"
            )
        props[name] = property_value(kind, value)
    return props


def _vectors(obj: AssetObject, spaces: Mapping[str, int], stored: frozenset[str]) -> dict[str, list[float]]:
    """The object's named vectors, checked against the configured spaces. A vector of a space that is not
    configured (any more) but that the collection has is another model's stored work, carried over as read
    (a write replaces the whole object): turning a space off must not turn updates into dead letters."""
    for space, vector in obj.vectors.items():
        if space not in spaces:
            if space in stored:
                continue
            raise WriteRejected(obj.asset_id, f"vector space {space!r} is not configured ({sorted(spaces)})")
        if len(vector) != spaces[space]:
            dims = f"{len(vector)} dimensions, not {spaces[space]}"
            raise WriteRejected(obj.asset_id, f"{space} vector has {dims}")
        if not all(math.isfinite(x) for x in vector):
            raise WriteRejected(obj.asset_id, f"{space} vector has NaN or infinite values")
    return {space: list(vector) for space, vector in obj.vectors.items()}


def rejected(asset_id: str, message: str) -> WriteRejected:
    """A per-object error from Weaviate, unless its text says Weaviate is down or overloaded."""
    if is_transient_message(message):
        raise StoreUnavailable(f"asset {asset_id!r}: {message}", cause=cause_of_message(message))
    if is_tenant_not_found(message):
        return UnknownTenant(asset_id, f"{message} (automatic tenant creation is off: `xmodal tenants add` first)")
    return WriteRejected(asset_id, message)


def check_disjoint(upserts: Sequence[AssetObject], deletes: Sequence[str]) -> None:
    """One write call holds at most one change per asset; which of two would win is the caller's call."""
    both = {o.asset_id for o in upserts} & set(deletes)
    ids = [o.asset_id for o in upserts]
    if both:
        raise ValueError(f"assets both upserted and deleted in one write: {sorted(both)[:5]}")
    if len(ids) != len(set(ids)):
        raise ValueError("an asset is upserted twice in one write; collapse the batch first")
