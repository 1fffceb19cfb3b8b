"""The gateway's request and response bodies: pydantic models, also the source of /openapi.json.

A search names exactly one query: ``text``, ``image`` or ``audio`` (inline base64 or a URI) or ``asset_id``
("more like this"). An optional ``modifier`` text moves the query vector towards that text (a composed
query: "this picture, but green"). The embedding space that answers follows from the query's modality and
the ``target`` (text -> image: clip; text -> audio: clap; audio -> text: clap); the response names it.

>>> SearchRequest.model_validate({"text": "a red circle", "limit": 5}).query_kind()
'text'
>>> SearchRequest.model_validate({"image": {"uri": "https://example.com/a.png"}}).query_kind()
'image'
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from services.store.filters import FilterExpr
from services.store.models import MetadataValue

MAX_LIMIT = 100
MAX_OFFSET = 9_900  # Weaviate's default window is 10 000 results (offset + limit)
MAX_QUERY_CHARS = 1_000
MAX_CONSISTENCY_TARGETS = 256
MAX_IMAGE_URI_CHARS = 16 * 1024 * 1024  # data: URIs carry whole images; the body limit binds first
MAX_RERANK_TOP_N = 1000  # the schema's bound; each gateway's XMODAL_RERANK__MAX_TOP_N is the real one

Target = Literal["image", "text", "audio", "video", "any"]
Granularity = Literal["segment", "video"]
Mode = Literal["vector", "hybrid"]
Part = Literal["content", "caption", "fused"]
QueryText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S")]
AssetId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
SpaceName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]

_FORBID = ConfigDict(extra="forbid")


class ImageData(BaseModel):
    """An image carried in the request, base64 encoded (standard or URL-safe alphabet)."""

    model_config = ConfigDict(extra="forbid", title="ImageData")
    data: str = Field(min_length=1, description="The image file (PNG, JPEG, WebP, ...), base64 encoded.")


class ImageUri(BaseModel):
    """An image the gateway fetches: http(s) (SSRF-guarded: no private addresses), data:, or file:// under
    the configured roots."""

    model_config = ConfigDict(extra="forbid", title="ImageUri")
    uri: str = Field(min_length=1, max_length=MAX_IMAGE_URI_CHARS, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:",
                     description="Where the image is.")


class AudioData(BaseModel):
    """An audio clip carried in the request, base64 encoded (standard or URL-safe alphabet)."""

    model_config = ConfigDict(extra="forbid", title="AudioData")
    data: str = Field(min_length=1, description="The audio file (WAV, FLAC, OGG, Opus, MP3), base64 encoded.")


class AudioUri(BaseModel):
    """An audio clip the gateway fetches, with the same guards as an image URI."""

    model_config = ConfigDict(extra="forbid", title="AudioUri")
    uri: str = Field(min_length=1, max_length=MAX_IMAGE_URI_CHARS, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:",
                     description="Where the clip is.")


class Modifier(BaseModel):
    """Text that moves the query: normalize((1 - weight) * query + weight * text)."""

    model_config = _FORBID
    text: QueryText = Field(description="What to move towards, e.g. 'green' or 'but in blue'.")
    weight: float = Field(0.5, ge=0.0, le=1.0, description="0 keeps the query, 1 searches the text alone.")


class OffsetRef(BaseModel):
    """Where a write landed: the answer of POST /v1/assets, passed as is (its asset_id is not needed)."""

    model_config = _FORBID
    partition: int = Field(ge=0, le=100_000, description="Kafka partition of the `assets` topic.")
    offset: int = Field(ge=0, description="Offset of the event in that partition.")
    asset_id: str | SkipJsonSchema[None] = Field(None, description="Ignored.")


class SearchOptions(BaseModel):
    """Everything of a search but the query itself (shared by JSON searches and uploads)."""

    model_config = _FORBID
    modifier: Modifier | SkipJsonSchema[None] = Field(None, description="Composed query: add this text.")
    target: Target = Field("any", description="Modality of the results: image, text, audio, video or any.")
    granularity: Granularity = Field(
        "segment", description="target video: rank videos by their best-matching segment (segment: MaxSim over "
        "the segments' vectors) or by the whole video (video: the mean of its segments' vectors). Either way "
        "each result lists its segments best first, with their time codes.")
    filters: FilterExpr | SkipJsonSchema[None] = Field(
        None, description="Metadata filter: {and: [...]}, {or: [...]} or {field, eq|ne|in|gt|gte|lt|lte}.")
    limit: int = Field(10, ge=1, le=MAX_LIMIT, description="Results per page.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Results to skip (paging).")
    mode: Mode = Field("vector", description="vector, or hybrid (BM25 on the text and caption fields fused with "
                       "vector).")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="Hybrid weighting: 1 = vector only, 0 = BM25 only.")
    rerank: bool = Field(False, description="Re-rank the first results with the gateway's reranker (400 "
                         "rerank_unavailable if it has none); the response's `rerank` says how it went.")
    rerank_top_n: Annotated[int, Field(ge=1, le=MAX_RERANK_TOP_N)] | SkipJsonSchema[None] = Field(
        None, description="How many of the first results to re-rank (grown to offset + limit). Default and "
        "largest allowed: the gateway's settings (more: 400). Used only with rerank: true.")
    part: Part | SkipJsonSchema[None] = Field(
        None, description="Which of an asset's vectors to search: content (the image, clip or text itself), "
        "caption (the caption an image or clip was published with, embedded by the space's text tower; assets "
        "without one are not found) or fused (both searches, merged by reciprocal rank fusion: each asset "
        "once, `score` the fused score, `parts` each part's own). Default: fused when the answering space "
        "embeds captions and the target can have them (image, audio, any); when no asset found has a caption "
        "that is the content search as it is, and the response says `part: content`. caption or fused for "
        "target text, or in a space without captions: 400.")
    space: SpaceName | SkipJsonSchema[None] = Field(
        None, description="Answer from this embedding space (see /readyz `spaces`); 400 no_space when it cannot "
        "answer the query. Default: the space the gateway's `directions` setting names for the query's "
        "direction, else the first configured space that can.")
    consistent_with: Annotated[list[OffsetRef], Field(max_length=MAX_CONSISTENCY_TARGETS)] | SkipJsonSchema[
        None] = Field(None, description="Wait until these writes are searchable (read-your-writes), "
                      "within the timeout.")
    consistency_timeout_s: Annotated[float, Field(gt=0, le=60)] | SkipJsonSchema[None] = Field(
        None, description="Longest wait for consistent_with; capped by the server's setting.")


class SearchRequest(SearchOptions):
    """A search: exactly one of ``text``, ``image``, ``audio``, ``asset_id``, plus options."""

    model_config = ConfigDict(
        extra="forbid", title="SearchRequest",
        json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["image"]}, {"required": ["audio"]},
                                     {"required": ["asset_id"]}]},
    )
    text: QueryText | SkipJsonSchema[None] = Field(None, description="A text query.")
    image: ImageData | ImageUri | SkipJsonSchema[None] = Field(None, description="An image query.")
    audio: AudioData | AudioUri | SkipJsonSchema[None] = Field(None, description="An audio query (a clip).")
    asset_id: AssetId | SkipJsonSchema[None] = Field(
        None, description="More like this: search with a stored asset's vector (the asset is left out).")

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        given = [n for n in ("text", "image", "audio", "asset_id") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of text, image, audio, asset_id; got {given or 'none'}")
        return self

    def query_kind(self) -> Literal["text", "image", "audio", "asset_id"]:
        if self.text is not None:
            return "text"
        if self.image is not None:
            return "image"
        return "audio" if self.audio is not None else "asset_id"


class UploadOptions(SearchOptions):
    """The form fields of POST /v1/search/upload besides the `image` or `audio` file."""

    model_config = ConfigDict(extra="forbid", title="UploadOptions")


class SegmentResult(BaseModel):
    model_config = ConfigDict(title="SegmentResult")
    start_s: float = Field(description="Where the segment starts, in seconds from the video's start.")
    end_s: float = Field(description="Where it ends.")
    score: float = Field(description="Cosine similarity of the segment to the query.")


class SearchResult(BaseModel):
    model_config = ConfigDict(title="SearchResult")
    asset_id: str
    score: float = Field(description="Higher is better: cosine similarity, or the fused hybrid score.")
    modality: str
    metadata: dict[str, MetadataValue]
    text: str | None = Field(None, description="The text of a text asset.")
    caption: str | None = Field(None, description="The caption of an image or audio asset, when it has one.")
    preview: str | None = Field(None, description="URL of the asset's preview, when it has one: a small PNG, "
                                "JPEG or WebP of an image, a short OGG clip of audio (plays in the browser).")
    rerank_score: float | None = Field(None, description="The reranker's score, when it re-scored this result "
                                       "(the order follows it within the re-ranked window; `score` stays the "
                                       "retrieval score).")
    parts: dict[str, float] | None = Field(
        None, description="Fused searches: the score of this asset in each part's own search that ranked it "
        "(content, caption): cosine similarity, or the hybrid score.")
    segments: list[SegmentResult] | None = Field(
        None, description="A video's segments, the best match first (at most 5): where to play it from.")
    start_s: float | None = Field(None, description="A video's best-matching moment: its best segment's start.")
    video: str | None = Field(None, description="URL of a video's file, when the browser can play it (WebM or "
                              "MP4, stored up to the worker's XMODAL_FETCH__MAX_VIDEO_PLAYBACK_BYTES).")
    duration_s: float | None = Field(None, description="A video's duration in seconds.")


class Consistency(BaseModel):
    satisfied: bool = Field(description="True when every consistent_with write was searchable.")
    waited_ms: float = Field(ge=0)
    detail: str | None = Field(None, description="Why it is not satisfied, when known.")


class RerankInfo(BaseModel):
    """How re-ranking went. Degraded: the results are in retrieval order (the reranker failed, ran past its
    time budget, or reads no content of this query or its candidates); ``reason`` says which."""

    name: str = Field(description="The reranker: its kind and model, e.g. biencoder:builtin:shapes-clip-large.")
    took_ms: float = Field(ge=0)
    candidates: int = Field(ge=0, description="Results the reranker re-scored.")
    degraded: bool
    reason: str | None = Field(None, description="Why it degraded ('timeout after 0.5 s', 'error: ...'), or "
                               "which results kept their retrieval places (audio ones, say).")


class SearchResponse(BaseModel):
    model_config = ConfigDict(title="SearchResponse")
    results: list[SearchResult]
    model: str = Field(description="Model that embedded the query.")
    space: str = Field(description="Embedding space that answered.")
    part: Part = Field("content", description="Which vectors answered: content (the space's named vector), "
                       "caption (<space>_caption) or fused (both, by reciprocal rank fusion).")
    took_ms: float = Field(ge=0)
    consistency: Consistency | None = Field(None, description="Present when consistent_with was given.")
    rerank: RerankInfo | None = Field(None, description="Present when rerank was asked for.")


class PublishResponse(BaseModel):
    asset_id: str
    partition: int
    offset: int


class SourceOffset(BaseModel):
    partition: int
    offset: int


class AssetResponse(BaseModel):
    """What the store holds for an asset (no vectors, no thumbnail bytes)."""

    asset_id: str
    modality: str
    text: str | None = None
    uri: str | None = None
    caption: str | None = None
    metadata: dict[str, MetadataValue]
    model: str = Field(description="Which model made the asset's vectors, as stored (see `models`).")
    models: dict[str, str] = Field(description="Embedding space -> the model that made the asset's vector there.")
    content_hash: str
    event_time: datetime
    indexed_at: datetime
    source: SourceOffset
    spaces: list[str]
    preview: str | None = None


class ErrorDetail(BaseModel):
    path: str = Field(description="Where in the request, e.g. body.limit or body.filters.and[0].gt.")
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="Machine-readable: invalid_request, unauthorized, not_found, overloaded, "
                      "undecodable, fetch_forbidden, too_large, timeout, unavailable, ...")
    message: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool] = Field(description="store (Weaviate reachable), model (loaded).")
    model: str | None = Field(None, description="The first space's model (see `spaces` for all).")
    spaces: dict[str, str] | None = Field(None, description="Embedding space -> model that embeds its queries.")


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict without the None fields (the OpenAPI schema marks them optional)."""
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)
