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

from services.config import caption_vector, segments_space, segments_vector, takes_captions, takes_video
from services.store.errors import InvalidQuery
from services.store.filters import FilterExpr

#: Namespace of the object uuids: ``uuid5(NAMESPACE_URL, "https://xmodal.dev/ns/asset")``. Fixed forever:
#: producers in any language compute an asset's Weaviate uuid as ``uuid5(ASSET_NAMESPACE, asset_id)``
#: (asset_id as UTF-8). Changing it orphans every stored object.
ASSET_NAMESPACE = uuid.UUID("4551ca79-a858-59d1-b54c-3fd642021c35")

MetadataValue = str | bool | int | float | list[str]
Mode = Literal["vector", "hybrid"]
Target = Literal["image", "text", "audio", "video", "any"]

MAX_LIMIT = 1000
#: Weaviate's default QUERY_MAXIMUM_RESULTS: offset + limit may not go past it.
MAX_WINDOW = 10_000


def asset_uuid(asset_id: str) -> uuid.UUID:
    """The Weaviate object uuid of an asset: uuid5 of the asset_id in :data:`ASSET_NAMESPACE`."""
    return uuid.uuid5(ASSET_NAMESPACE, asset_id)


@dataclass(frozen=True)
class VideoSegments:
    """A video's segments as stored: parallel start and end times (seconds), one vector per segment in each
    ``<space>_segments`` multi-vector, and the file itself when a browser can play it (``playback``)."""

    starts: tuple[float, ...]
    ends: tuple[float, ...]
    vectors: dict[str, list[list[float]]]
    duration_s: float
    playback: bytes | None = None
    playback_mime: str | None = None


@dataclass(frozen=True)
class SegmentMatch:
    """One segment of a video result: its time span and its cosine similarity to the query."""

    index: int
    start_s: float
    end_s: float
    score: float


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
    segments: VideoSegments | None = None  # a video's (written with the object: all replaced at once)


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
    segments: dict[str, list[list[float]]] = field(default_factory=dict)  # a video's multi-vectors


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
    segments: tuple[tuple[float, float], ...] = ()  # a video's (start, end) times, in seconds
    duration_s: float | None = None
    has_playback: bool = False


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
        if self.target not in ("image", "text", "audio", "video", "any"):
            return f"target must be image, text, audio, video or any, not {self.target!r}"
        if segments_space(self.space) is not None and self.mode != "vector":
            return "a search of video segments is a vector search"
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
    segments: tuple[SegmentMatch, ...] = ()  # a video's segments, best match first
    duration_s: float | None = None
    has_playback: bool = False


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
    {'clip': 512, 'clip_caption': 512, 'clip_segments': 512, 't': 8}
    """
    dims: dict[str, int] = {}
    for s in spaces:
        dims[s.space] = s.dim
        if takes_captions(s.modalities):
            dims[caption_vector(s.space)] = s.dim
        if takes_video(s.modalities):
            dims[segments_vector(s.space)] = s.dim
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
