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
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    Reconfigure,
    ReplicationDeletionStrategy,
    Tokenization,
    VectorDistances,
)
from weaviate.collections.classes.config import (
    BQConfig,
    CollectionConfig,
    NamedVectorConfig,
    PQConfig,
    ReplicationConfigCreate,
    RQConfig,
    SQConfig,
    VectorIndexConfigHNSW,
)
from weaviate.collections.classes.config_base import _QuantizerConfigCreate
from weaviate.collections.classes.config_vector_index import (
    _BQConfigUpdate,
    _PQConfigUpdate,
    _RQConfigUpdate,
    _SQConfigUpdate,
)
from weaviate.collections.classes.config_vectors import VectorConfigCreate, VectorConfigUpdate

from services.config import VectorIndexSettings, segments_space
from services.errors import ConfigError

# Weaviate rejects property names ending in these (entities/schema/validation.go, v1.39).
_RESERVED_SUFFIXES = ("_searchable", "_rangeable", "_temp", "__meta_count", "_propertyLength", "_nullState")
_SIMPLE_KEY = re.compile(r"^[a-z0-9_]+$")
_METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class PropKind(StrEnum):
    """Weaviate data types the store uses (the values are Weaviate's names)."""

    TEXT = "text"
    TEXT_ARRAY = "text[]"
    NUMBER = "number"
    NUMBER_ARRAY = "number[]"  # a video's segment times (never a metadata type)
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

#: Properties read back by ``get`` (never the blob).
RESULT_PROPERTIES = [
    "asset_id", "modality", "text", "caption", "uri", "metadata_json", "content_hash", "model_id",
    "event_time", "indexed_at", "source_partition", "source_offset", "has_thumbnail",
    "segment_starts", "segment_ends", "duration_s", "has_playback",
]
#: What a hit needs (reads.hit): fewer properties per result is less for the client to deserialize, the
#: largest share of a search's CPU in the gateway after asyncio. A video's segment times only where they are
#: scored (SEGMENT_HIT_PROPERTIES).
HIT_PROPERTIES = [p for p in RESULT_PROPERTIES
                  if p not in {"model_id", "source_partition", "source_offset", "segment_starts", "segment_ends"}]
SEGMENT_HIT_PROPERTIES = [*HIT_PROPERTIES, "segment_starts", "segment_ends"]
STATE_PROPERTIES = ["asset_id", "event_time", "content_hash", "caption_hash", "model_id"]


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
        _text("caption", tokenization=Tokenization.WORD, filterable=False, searchable=True),
        _text("uri", filterable=False),
        _text("content_hash"),
        _text("caption_hash"),
        _text("model_id"),
        _text("metadata_json", filterable=False),
        Property(name="event_time", data_type=DataType.DATE, index_range_filters=True),
        Property(name="indexed_at", data_type=DataType.DATE, index_range_filters=True),
        Property(name="source_partition", data_type=DataType.INT),
        Property(name="source_offset", data_type=DataType.INT),
        Property(name="has_thumbnail", data_type=DataType.BOOL),
        Property(name="thumbnail", data_type=DataType.BLOB),
        # A video's segments: parallel lists, index i is the i-th vector of each <space>_segments multi-vector.
        Property(name="segment_starts", data_type=DataType.NUMBER_ARRAY, index_filterable=False),
        Property(name="segment_ends", data_type=DataType.NUMBER_ARRAY, index_filterable=False),
        Property(name="duration_s", data_type=DataType.NUMBER, index_filterable=True),
        Property(name="has_playback", data_type=DataType.BOOL),
        _text("playback_mime", filterable=False),
        Property(name="playback", data_type=DataType.BLOB),
    ]


def meta_property_config(name: str, kind: PropKind) -> Property:
    """A metadata property: filterable, never BM25-searched (only ``text`` is)."""
    if kind in (PropKind.TEXT, PropKind.TEXT_ARRAY):
        return Property(
            name=name, data_type=DataType(kind.value), tokenization=Tokenization.FIELD,
            index_filterable=True, index_searchable=False,
        )
    return Property(name=name, data_type=DataType(kind.value), index_filterable=True)


def vector_config(space: str, index: VectorIndexSettings | None = None) -> VectorConfigCreate:
    """One self-provided named vector per embedding space: HNSW, cosine distance, the space's index settings.

    A video-segments vector (``clip_segments``) is a multi-vector: one vector per segment, scored by MaxSim
    (for a query of one vector, the largest dot product with any segment; the vectors are unit length, so
    that is the best segment's cosine), on an HNSW index of its own.
    """
    index = index or VectorIndexSettings()
    if segments_space(space) is not None:
        multi = Configure.MultiVectors.self_provided(
            name=space, multi_vector_config=Configure.VectorIndex.MultiVector.multi_vector(),
            vector_index_config=Configure.VectorIndex.hnsw(
                distance_metric=VectorDistances.COSINE, ef=index.ef, ef_construction=index.ef_construction,
                max_connections=index.max_connections, quantizer=_quantizer(index),
            ),
        )
        return cast(VectorConfigCreate, multi)
    config = Configure.Vectors.self_provided(
        name=space,
        vector_index_config=Configure.VectorIndex.hnsw(
            distance_metric=VectorDistances.COSINE, ef=index.ef, ef_construction=index.ef_construction,
            max_connections=index.max_connections, quantizer=_quantizer(index),
        ),
    )
    return cast(VectorConfigCreate, config)  # the client leaves self_provided() unannotated


QuantizerUpdate = _PQConfigUpdate | _BQConfigUpdate | _SQConfigUpdate | _RQConfigUpdate


def _quantizer(index: VectorIndexSettings) -> _QuantizerConfigCreate:
    q = Configure.VectorIndex.Quantizer
    # "none" is no compression even where the server sets a DEFAULT_QUANTIZATION for new collections
    return cast(_QuantizerConfigCreate, _compression(q, index) or q.none())


def _quantizer_update(index: VectorIndexSettings) -> QuantizerUpdate | None:
    return cast("QuantizerUpdate | None", _compression(Reconfigure.VectorIndex.Quantizer, index))


def _compression(q: Any, index: VectorIndexSettings) -> Any:
    """The quantizer of ``index.compression`` from ``q`` (the client's Configure or Reconfigure factory, whose
    methods take the same arguments); None for "none"."""
    match index.compression:
        case "rq":
            return q.rq(bits=index.rq_bits, rescore_limit=index.rescore_limit)
        case "sq":
            return q.sq(rescore_limit=index.rescore_limit, training_limit=index.training_limit)
        case "pq":
            return q.pq(segments=index.pq_segments, centroids=index.pq_centroids,
                        training_limit=index.training_limit)
        case "bq":
            return q.bq()
    return None


@dataclass(frozen=True)
class IndexState:
    """A space's vector index as Weaviate reports it, in the terms of VectorIndexSettings."""

    index_type: str
    ef: int = -1
    ef_construction: int = 128
    max_connections: int = 32
    compression: str = "none"
    rq_bits: int | None = None
    rescore_limit: int | None = None
    pq_segments: int | None = None
    pq_centroids: int | None = None

    @classmethod
    def of(cls, config: NamedVectorConfig) -> IndexState:
        index = config.vector_index_config
        if not isinstance(index, VectorIndexConfigHNSW):
            return cls(index_type=index.vector_index_type())
        q = index.quantizer
        return cls(
            index_type="hnsw", ef=index.ef, ef_construction=index.ef_construction,
            max_connections=index.max_connections,
            compression={RQConfig: "rq", SQConfig: "sq", PQConfig: "pq", BQConfig: "bq"}.get(type(q), "none"),
            rq_bits=q.bits if isinstance(q, RQConfig) else None,
            rescore_limit=q.rescore_limit if isinstance(q, RQConfig | SQConfig) else None,
            pq_segments=q.segments if isinstance(q, PQConfig) else None,
            pq_centroids=q.centroids if isinstance(q, PQConfig) else None,
        )


@dataclass(frozen=True)
class IndexChange:
    """One setting of a space's index that differs from what is configured; ``in_place``: Weaviate can
    change it on the existing index."""

    space: str
    setting: str
    current: object
    wanted: object
    in_place: bool

    def __str__(self) -> str:
        return f"{self.space}.{self.setting}: {self.current} in Weaviate, {self.wanted} configured"


def index_changes(space: str, wanted: VectorIndexSettings, current: IndexState) -> list[IndexChange]:
    """What differs between a space's index settings and its index in Weaviate (hnsw/config_update.go, v1.39:
    ef and the rescore limit are read on every search, compression can be switched on; efConstruction,
    maxConnections and the rq bits are immutable, and a compressed index stays as it was compressed).

    >>> now = IndexState("hnsw", compression="rq", rq_bits=8, rescore_limit=20)
    >>> [str(c) for c in index_changes("clip", VectorIndexSettings(compression="rq", ef=64), now)]
    ['clip.ef: -1 in Weaviate, 64 configured']
    >>> [c.in_place for c in index_changes("clip", VectorIndexSettings(), now)]
    [False]
    """
    if current.index_type != "hnsw":
        return [IndexChange(space, "index type", current.index_type, "hnsw", in_place=False)]
    changes: list[IndexChange] = []

    def compare(setting: str, now: object, want: object, *, in_place: bool) -> None:
        if now != want:
            changes.append(IndexChange(space, setting, now, want, in_place=in_place))

    compare("ef", current.ef, wanted.ef, in_place=True)
    compare("ef_construction", current.ef_construction, wanted.ef_construction, in_place=False)
    compare("max_connections", current.max_connections, wanted.max_connections, in_place=False)
    # From none, any compression can be turned on; once on, neither another one nor none.
    compare("compression", current.compression, wanted.compression, in_place=current.compression == "none")
    if current.compression != wanted.compression:
        return changes
    if wanted.compression == "rq":
        compare("rq_bits", current.rq_bits, wanted.rq_bits, in_place=False)
    if wanted.compression == "pq":
        if wanted.pq_segments:  # 0: Weaviate picks (and reports what it picked)
            compare("pq_segments", current.pq_segments, wanted.pq_segments, in_place=False)
        compare("pq_centroids", current.pq_centroids, wanted.pq_centroids, in_place=False)
    if wanted.rescore_limit is not None:
        compare("rescore_limit", current.rescore_limit, wanted.rescore_limit, in_place=True)
    return changes


def fixed_changes_message(collection: str, changes: list[IndexChange]) -> str:
    """What an operator reads when the index settings ask for what Weaviate cannot change in place."""
    named = "; ".join(
        f"{c} (XMODAL_WEAVIATE__VECTOR_INDEX__{c.space.upper()}__{c.setting.upper()})"
        if c.setting in VectorIndexSettings.model_fields else str(c) for c in changes
    )
    return (f"collection {collection}: Weaviate cannot change these on an existing index: {named}. Set them "
            "back to what Weaviate has, or index into a new collection (XMODAL_WEAVIATE__COLLECTION, filled "
            "again from the topic) and switch to it")


def check_index_settings(space: str, index: VectorIndexSettings, dim: int) -> None:
    """Refuse settings Weaviate would only reject when the first vectors are compressed."""
    if index.compression == "pq" and index.pq_segments and dim % index.pq_segments:
        raise ConfigError(f"space {space}: pq_segments ({index.pq_segments}) must divide the dimension ({dim})"
                          f" (XMODAL_WEAVIATE__VECTOR_INDEX__{space.upper()}__PQ_SEGMENTS)")


def index_update(space: str, wanted: VectorIndexSettings) -> VectorConfigUpdate:
    """The in-place update of a space's index to its settings (only the mutable fields are sent)."""
    return Reconfigure.Vectors.update(
        name=space,
        vector_index_config=Reconfigure.VectorIndex.hnsw(ef=wanted.ef, quantizer=_quantizer_update(wanted)),
    )


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
    """What the store knows of the collection: property name -> type, the named vectors and their indexes,
    replicas per shard."""

    properties: dict[str, PropKind]
    vectors: frozenset[str]
    replication_factor: int = 1
    indexes: Mapping[str, IndexState] = field(default_factory=dict)
    multi_tenancy: bool = False
    auto_tenant_creation: bool = False

    @classmethod
    def of(cls, config: CollectionConfig) -> SchemaView:
        props: dict[str, PropKind] = {}
        for prop in config.properties:
            try:
                props[prop.name] = PropKind(prop.data_type.value)
            except ValueError:
                continue  # a type the store never creates (someone edited the schema); not filterable
        factor = config.replication_config.factor if config.replication_config else 1
        named = config.vector_config or {}
        indexes = {name: IndexState.of(vector) for name, vector in named.items()}
        mt = config.multi_tenancy_config
        return cls(props, frozenset(named.keys()), factor, indexes, multi_tenancy=bool(mt and mt.enabled),
                   auto_tenant_creation=bool(mt and mt.enabled and mt.auto_tenant_creation))

    def field_kind(self, field: str) -> tuple[str, PropKind] | None:
        """(property name, type) of a filter field: a builtin field or a metadata key."""
        if field in BUILTIN_FIELDS:
            return field, BUILTIN_FIELDS[field]
        name = meta_property(field)
        kind = self.properties.get(name)
        return None if kind is None else (name, kind)
