"""The collection's shape: fixed properties, one property per metadata key, one named vector per space.

Metadata key -> property name (:func:`meta_property`). Weaviate compares property names case-insensitively
and reserves some suffixes (``_temp``, ``_searchable``, ...), so ``meta_<key>`` is only used for keys
that are lower case and end in no reserved suffix; any other key gets an escaped, still unique name:

>>> meta_property("color"), meta_property("Color"), meta_property("max_temp")
('meta_color', 'metax__color_x', 'metax_max__temp_x')

Value -> property type (:func:`kind_of`): ints and floats are both ``number`` (so 3 then 3.5 never conflict),
bool is ``boolean``, str is ``text`` (field tokenization: filters match the whole value), list[str] is
``text[]``.

>>> kind_of(3) is kind_of(3.5) is PropKind.NUMBER, kind_of(True), kind_of(["a"])
(True, <PropKind.BOOL: 'boolean'>, <PropKind.TEXT_ARRAY: 'text[]'>)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    ReplicationDeletionStrategy,
    Tokenization,
    VectorDistances,
)
from weaviate.collections.classes.config import CollectionConfig, ReplicationConfigCreate
from weaviate.collections.classes.config_vectors import VectorConfigCreate

# Weaviate rejects property names ending in these (entities/schema/validation.go, v1.39).
_RESERVED_SUFFIXES = ("_searchable", "_rangeable", "_temp", "__meta_count", "_propertyLength", "_nullState")
_SIMPLE_KEY = re.compile(r"^[a-z0-9_]+$")
_METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class PropKind(StrEnum):
    """Weaviate data types the store uses (the values are Weaviate's names)."""

    TEXT = "text"
    TEXT_ARRAY = "text[]"
    NUMBER = "number"
    BOOL = "boolean"
    DATE = "date"
    INT = "int"
    BLOB = "blob"


#: Fields a filter may name besides metadata keys; they shadow metadata keys of the same name.
BUILTIN_FIELDS: dict[str, PropKind] = {
    "asset_id": PropKind.TEXT,
    "modality": PropKind.TEXT,
    "event_time": PropKind.DATE,
    "indexed_at": PropKind.DATE,
}

#: Properties read back for hits, ``get`` and ``states`` (never the blob).
RESULT_PROPERTIES = [
    "asset_id", "modality", "text", "uri", "metadata_json", "content_hash", "model_id",
    "event_time", "indexed_at", "source_partition", "source_offset", "has_thumbnail",
]
STATE_PROPERTIES = ["asset_id", "event_time", "content_hash", "model_id"]


def valid_metadata_key(key: str) -> bool:
    return bool(_METADATA_KEY.match(key))


def meta_property(key: str) -> str:
    """The property holding metadata key ``key`` (an identifier, see schemas.asset_event)."""
    simple = f"meta_{key}"
    if _SIMPLE_KEY.match(key) and not simple.endswith(_RESERVED_SUFFIXES):
        return simple
    # "_" -> "__" and "X" -> "_x" is reversible, so distinct keys never share a property; the "metax_"
    # prefix cannot come out of the simple form and the "_x" tail ends in no reserved suffix.
    escaped = "".join("__" if c == "_" else f"_{c.lower()}" if c.isupper() else c for c in key)
    return f"metax_{escaped}_x"


def kind_of(value: object) -> PropKind | None:
    """The property type a metadata value needs, or None when the value is not storable."""
    if isinstance(value, bool):
        return PropKind.BOOL
    if isinstance(value, int | float):
        return PropKind.NUMBER
    if isinstance(value, str):
        return PropKind.TEXT
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return PropKind.TEXT_ARRAY
    return None


def property_value(kind: PropKind, value: Any) -> Any:
    """The value as Weaviate wants it: numbers as floats (a Python int would travel as an int)."""
    if kind is PropKind.NUMBER:
        return float(value)
    return value


def _text(name: str, *, tokenization: Tokenization = Tokenization.FIELD, filterable: bool = True,
          searchable: bool = False) -> Property:
    return Property(
        name=name, data_type=DataType.TEXT, tokenization=tokenization,
        index_filterable=filterable, index_searchable=searchable,
    )


def base_properties() -> list[Property]:
    """The fixed properties, created with the collection."""
    return [
        _text("asset_id"),
        _text("modality"),
        _text("text", tokenization=Tokenization.WORD, filterable=False, searchable=True),
        _text("uri", filterable=False),
        _text("content_hash"),
        _text("model_id"),
        _text("metadata_json", filterable=False),
        Property(name="event_time", data_type=DataType.DATE, index_range_filters=True),
        Property(name="indexed_at", data_type=DataType.DATE, index_range_filters=True),
        Property(name="source_partition", data_type=DataType.INT),
        Property(name="source_offset", data_type=DataType.INT),
        Property(name="has_thumbnail", data_type=DataType.BOOL),
        Property(name="thumbnail", data_type=DataType.BLOB),
    ]


def meta_property_config(name: str, kind: PropKind) -> Property:
    """A metadata property: filterable, never BM25-searched (only ``text`` is)."""
    if kind in (PropKind.TEXT, PropKind.TEXT_ARRAY):
        return Property(
            name=name, data_type=DataType(kind.value), tokenization=Tokenization.FIELD,
            index_filterable=True, index_searchable=False,
        )
    return Property(name=name, data_type=DataType(kind.value), index_filterable=True)


def vector_config(space: str) -> VectorConfigCreate:
    """One self-provided named vector per embedding space: HNSW, cosine distance."""
    config = Configure.Vectors.self_provided(
        name=space,
        vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE),
    )
    return cast(VectorConfigCreate, config)  # the client leaves self_provided() unannotated


def replication_config(factor: int) -> ReplicationConfigCreate | None:
    """Replicas per shard; None (the server's REPLICATION_MINIMUM_FACTOR, 1 by default) for a factor of 1.

    Deletes then re-upserts of one asset are normal here, so a conflict between a replica that missed a
    delete and one that has it goes to the newer of the two (neither "deleted wins" nor no resolution).
    """
    if factor <= 1:
        return None
    return Configure.replication(factor=factor, deletion_strategy=ReplicationDeletionStrategy.TIME_BASED_RESOLUTION)


@dataclass(frozen=True)
class SchemaView:
    """What the store knows of the collection: property name -> type, the named vectors, replicas per shard."""

    properties: dict[str, PropKind]
    vectors: frozenset[str]
    replication_factor: int = 1

    @classmethod
    def of(cls, config: CollectionConfig) -> SchemaView:
        props: dict[str, PropKind] = {}
        for prop in config.properties:
            try:
                props[prop.name] = PropKind(prop.data_type.value)
            except ValueError:
                continue  # a type the store never creates (someone edited the schema); not filterable
        factor = config.replication_config.factor if config.replication_config else 1
        return cls(props, frozenset((config.vector_config or {}).keys()), factor)

    def field_kind(self, field: str) -> tuple[str, PropKind] | None:
        """(property name, type) of a filter field: a builtin field or a metadata key."""
        if field in BUILTIN_FIELDS:
            return field, BUILTIN_FIELDS[field]
        name = meta_property(field)
        kind = self.properties.get(name)
        return None if kind is None else (name, kind)
