"""What goes into the store and what comes out of it: plain frozen dataclasses, no weaviate types.

>>> str(asset_uuid("sku-1")) == str(uuid.uuid5(ASSET_NAMESPACE, "sku-1"))
True
>>> SearchQuery(vector=[0.1, 0.2], space="clip").mode
'vector'
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from services.config import caption_vector, takes_captions
from services.store.errors import InvalidQuery
from services.store.filters import FilterExpr

#: Namespace of the object uuids: ``uuid5(NAMESPACE_URL, "https://xmodal.dev/ns/asset")``. Fixed forever:
#: producers in any language compute an asset's Weaviate uuid as ``uuid5(ASSET_NAMESPACE, asset_id)``
#: (asset_id as UTF-8). Changing it orphans every stored object.
ASSET_NAMESPACE = uuid.UUID("4551ca79-a858-59d1-b54c-3fd642021c35")

MetadataValue = str | bool | int | float | list[str]
Mode = Literal["vector", "hybrid"]
Target = Literal["image", "text", "audio", "any"]

MAX_LIMIT = 1000
#: Weaviate's default QUERY_MAXIMUM_RESULTS: offset + limit may not go past it.
MAX_WINDOW = 10_000


def asset_uuid(asset_id: str) -> uuid.UUID:
    """The Weaviate object uuid of an asset: uuid5 of the asset_id in :data:`ASSET_NAMESPACE`."""
    return uuid.uuid5(ASSET_NAMESPACE, asset_id)


@dataclass(frozen=True)
class AssetObject:
    """One object to upsert. ``write`` replaces the whole stored object (properties and vectors)."""

    asset_id: str
    modality: str
    text: str | None
    uri: str | None
    metadata: dict[str, MetadataValue]
    content_hash: str
    model_id: str
    event_time: datetime
    source_partition: int
    source_offset: int
    vectors: dict[str, list[float]]
    thumbnail: bytes | None = None
    indexed_at: datetime | None = None
    caption: str | None = None  # an image's or a clip's caption; its vectors are the *_caption ones
    caption_hash: str = ""  # "" when there is no caption


@dataclass(frozen=True)
class StoredState:
    """What the pipeline needs to decide between skip, metadata-only and re-embedding the content, the
    caption, or both."""

    asset_id: str
    event_time: datetime
    content_hash: str
    model_id: str
    vectors: dict[str, list[float]] = field(default_factory=dict)
    caption_hash: str = ""


@dataclass(frozen=True)
class StoredAsset:
    """One stored asset as the gateway shows it (no vectors, no thumbnail bytes)."""

    asset_id: str
    modality: str
    text: str | None
    uri: str | None
    metadata: dict[str, MetadataValue]
    content_hash: str
    model_id: str
    event_time: datetime
    indexed_at: datetime
    source_partition: int
    source_offset: int
    has_thumbnail: bool
    spaces: tuple[str, ...]  # the named vectors it has (a caption's: <space>_caption)
    caption: str | None = None


@dataclass(frozen=True)
class SearchQuery:
    """A search. ``mode="vector"`` needs ``vector``; ``mode="hybrid"`` needs ``text`` and uses ``vector``
    when given (without it the search is BM25 only). ``alpha`` is Weaviate's hybrid weighting: 1 = vector
    only, 0 = keywords only. ``target`` filters on modality; ``exclude_ids`` drops assets (e.g. the query
    asset of "more like this"). ``tenant``: whose assets are searched (multi-tenant collections only)."""

    vector: list[float] | None
    space: str
    text: str | None = None
    mode: Mode = "vector"
    alpha: float = 0.5
    target: Target = "any"
    filters: FilterExpr | None = None
    limit: int = 10
    offset: int = 0
    exclude_ids: Sequence[str] = ()
    tenant: str | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise InvalidQuery(problem)

    def _problem(self) -> str | None:
        if self.mode not in ("vector", "hybrid"):
            return f"mode must be 'vector' or 'hybrid', not {self.mode!r}"
        if self.target not in ("image", "text", "audio", "any"):
            return f"target must be image, text, audio or any, not {self.target!r}"
        if self.mode == "vector" and not self.vector:
            return "a vector search needs a query vector"
        if self.mode == "hybrid" and not (self.text and self.text.strip()):
            return "a hybrid search needs query text"
        if not 0.0 <= self.alpha <= 1.0:
            return f"alpha must be within [0, 1], not {self.alpha}"
        if not 1 <= self.limit <= MAX_LIMIT:
            return f"limit must be within [1, {MAX_LIMIT}], not {self.limit}"
        if self.offset < 0 or self.offset + self.limit > MAX_WINDOW:
            return f"offset must be >= 0 and offset + limit <= {MAX_WINDOW}"
        return None


@dataclass(frozen=True)
class Hit:
    """One search result. ``score``: higher is better. Vector mode: cosine similarity (1 - cosine distance,
    within [-1, 1]). Hybrid mode: Weaviate's fused score (relative score fusion, within [0, 1]).
    ``content_hash`` changes when the content does (re-rankers key their caches on it)."""

    asset_id: str
    score: float
    modality: str
    metadata: dict[str, MetadataValue]
    text: str | None
    uri: str | None
    has_thumbnail: bool
    event_time: datetime
    indexed_at: datetime
    content_hash: str = ""
    caption: str | None = None


class Embeds(Protocol):
    """A space as the store sizes it: its name, dimension and the modalities its model embeds."""

    @property
    def space(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def modalities(self) -> frozenset[str]: ...


def vector_dims(spaces: Iterable[Embeds]) -> dict[str, int]:
    """Named vector -> dimension: each space's own, and its caption vector where its model embeds captions
    (texts and images or audio: clip -> clip and clip_caption; a text-only space has no caption vector).

    >>> class Space:
    ...     def __init__(self, space, dim, modalities): self.space, self.dim, self.modalities = space, dim, modalities
    >>> vector_dims([Space("clip", 512, frozenset({"image", "text"})), Space("t", 8, frozenset({"text"}))])
    {'clip': 512, 'clip_caption': 512, 't': 8}
    """
    dims: dict[str, int] = {}
    for s in spaces:
        dims[s.space] = s.dim
        if takes_captions(s.modalities):
            dims[caption_vector(s.space)] = s.dim
    return dims


def format_model_ids(model_ids: dict[str, str]) -> str:
    """The stored ``model_id`` of an object: which model made each of its vectors, as compact JSON.

    >>> format_model_ids({"clip": "builtin:shapes-clip", "clap": "builtin:sounds-clap"})
    '{"clap":"builtin:sounds-clap","clip":"builtin:shapes-clip"}'
    """
    return json.dumps(model_ids, sort_keys=True, separators=(",", ":"))


def parse_model_ids(stored: str, spaces: Iterable[str] = ()) -> dict[str, str]:
    """The inverse of :func:`format_model_ids`. A plain id (objects written before spaces were configurable)
    made every vector the object has: ``spaces``, its spaces.

    >>> parse_model_ids('{"clap":"m1","clip":"m2"}')
    {'clap': 'm1', 'clip': 'm2'}
    >>> parse_model_ids("builtin:shapes-clip", {"clip": [1.0]})
    {'clip': 'builtin:shapes-clip'}
    """
    if stored.startswith("{"):
        try:
            parsed = json.loads(stored)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return {str(k): str(v) for k, v in parsed.items()}
    return dict.fromkeys(spaces, stored)
