"""The asset event, version 1: the contract between producers and xmodal.

Kafka key = asset_id (UTF-8), value = UTF-8 JSON of :class:`AssetEvent`. The JSON Schema file beside this
module (asset_event.schema.json) is generated from this model (``python -m schemas``) and checked in, so
producers in any language can validate; a test fails when the two drift.

>>> ev = AssetEvent.model_validate_json(
...     '{"schema_version": 1, "asset_id": "sku-1", "op": "upsert", "modality": "text",'
...     ' "text": "red running shoes", "event_time": "2026-11-27T10:00:00Z"}')
>>> ev.asset_id, ev.op.value, ev.content_kind()
('sku-1', 'upsert', 'text')
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
MAX_METADATA_KEYS = 64
MAX_METADATA_BYTES = 16 * 1024
MAX_TEXT_CHARS = 16 * 1024
METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: A tenant name: Weaviate's own rule for tenant names (letters, digits, `_` and `-`, at most 64), which is also
#: safe in URLs, logs and metric labels.
TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
URI_SCHEMES = ("http", "https", "file", "data")


class Op(StrEnum):
    upsert = "upsert"
    delete = "delete"


class Modality(StrEnum):
    image = "image"
    text = "text"
    audio = "audio"
    video = "video"


#: Modalities whose upserts may carry a caption (its own vector beside the content's).
CAPTIONED = (Modality.image, Modality.audio)

# Smart union: each JSON value keeps its own type (1 stays an int, true a bool, "1" a string).
MetadataValue = str | bool | int | float | list[Annotated[str, StringConstraints(max_length=1024)]]


class AssetEvent(BaseModel):
    """One change to one asset. An upsert carries exactly one of ``uri``, ``data`` or ``text``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="AssetEvent")

    schema_version: Literal[1] = Field(description="Contract version; 1 is the only one so far.")
    asset_id: str = Field(
        min_length=1, max_length=256,
        description="Stable id of the asset (any Unicode but control characters). Also the Kafka key.",
    )
    tenant: str | None = Field(
        None, pattern=TENANT.pattern,
        description="The customer the asset belongs to ([A-Za-z0-9_-], at most 64 chars). Required when the "
        "deployment runs multi-tenant (XMODAL_WEAVIATE__MULTI_TENANCY=true), refused when it does not; the "
        "same asset_id in two tenants is two assets.",
    )
    op: Op = Field(Op.upsert, description="upsert (create or replace) or delete (needs only asset_id).")
    modality: Modality | None = Field(
        None, description="image, text, audio or video. Required for an upsert. A video (WebM, MP4, Matroska, "
        "...: whatever the worker's bundled FFmpeg decodes) is searched by its keyframes, and by its sound where "
        "an audio space exists; it takes no caption.",
    )
    uri: str | None = Field(
        None, max_length=4096, description="Where the content is: http(s)://, file:// (configured roots) or data:."
    )
    data: str | None = Field(None, description="The content inline, base64 encoded.")
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS, description="The content, for modality text.")
    caption: str | None = Field(
        None, min_length=1, max_length=MAX_TEXT_CHARS,
        description="Text that describes an image or audio upsert (a product title, an alt text). It gets a "
        "vector of its own in every space that embeds both the content's modality and text, so searches can "
        "find the asset by it; not allowed on text assets (their text is the content) or deletes.",
    )
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict,
        description="Filterable attributes. Keys are identifiers ([A-Za-z_][A-Za-z0-9_]*, at most 64 chars); "
        "values are strings, numbers, booleans or lists of strings; at most 64 keys and 16 KiB as JSON.",
        json_schema_extra={"propertyNames": {"pattern": METADATA_KEY.pattern}, "maxProperties": MAX_METADATA_KEYS},
    )
    event_time: AwareDatetime = Field(
        description="When the change happened at the source (RFC 3339 with a zone). An event older than "
        "what is stored for the asset is ignored."
    )

    @field_validator("asset_id")
    @classmethod
    def _no_control_chars(cls, v: str) -> str:
        if _CONTROL.search(v):
            raise ValueError("asset_id must not contain control characters")
        return v

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str | None) -> str | None:
        if v is not None and v.split(":", 1)[0].lower() not in URI_SCHEMES:
            raise ValueError(f"uri scheme must be one of {', '.join(URI_SCHEMES)}")
        return v

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(v) > MAX_METADATA_KEYS:
            raise ValueError(f"metadata has {len(v)} keys; at most {MAX_METADATA_KEYS}")
        bad = [k for k in v if not METADATA_KEY.match(k)]
        if bad:
            raise ValueError(f"metadata keys must be identifiers ([A-Za-z_][A-Za-z0-9_]*): {bad[:3]}")
        if len(json.dumps(v, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON")
        return v

    @model_validator(mode="after")
    def _content_matches_op(self) -> AssetEvent:
        sources = [name for name in ("uri", "data", "text") if getattr(self, name) is not None]
        if self.op is Op.delete:
            if self.caption is not None:
                raise ValueError("a delete carries no caption; leave `caption` out")
            return self
        if self.modality is None:
            raise ValueError("an upsert needs a modality (image, text, audio or video)")
        if len(sources) != 1:
            raise ValueError(f"an upsert needs exactly one of uri, data, text; got {sources or 'none'}")
        if self.text is not None and self.modality is not Modality.text:
            raise ValueError("`text` content is only for modality text")
        if self.caption is not None and self.modality not in CAPTIONED:
            raise ValueError("`caption` is for image and audio upserts; a text asset's text is its content")
        return self

    def content_kind(self) -> str | None:
        """Which content source the event carries: 'uri', 'data', 'text' or None (a delete)."""
        for name in ("uri", "data", "text"):
            if getattr(self, name) is not None:
                return name
        return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) generated from :class:`AssetEvent`."""
    schema = AssetEvent.model_json_schema(mode="validation")
    # The model validators, spelled out for validators in other languages: an upsert needs a modality and
    # exactly one content source; `text` content only for modality text; `caption` only on image and audio
    # upserts (op defaults to upsert, so an event without op is one).
    one_source = [{"required": [name]} for name in ("uri", "data", "text")]
    schema["allOf"] = [
        {
            "if": {"properties": {"op": {"const": "delete"}}, "required": ["op"]},
            "else": {"required": ["modality"], "oneOf": one_source},
        },
        {"if": {"required": ["text"]}, "then": {"properties": {"modality": {"const": "text"}}}},
        {"if": {"required": ["caption"]}, "then": {
            "required": ["modality"],
            "properties": {"op": {"const": "upsert"}, "modality": {"enum": [m.value for m in CAPTIONED]}},
        }},
    ]
    schema["properties"]["event_time"]["pattern"] = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|z|[+-]\d\d:\d\d)$"
    schema["properties"]["asset_id"]["pattern"] = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://xmodal.dev/schemas/asset_event.schema.json"
    return schema


def parse_event_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp the way events do (used by tools that build events)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
