"""The asset store: the only package that talks to Weaviate (and the only one importing ``weaviate``).

Storage design (collection ``Asset``, settings.weaviate.collection):

- Object uuid = ``uuid5(ASSET_NAMESPACE, asset_id)`` (:func:`asset_uuid`; the namespace constant is in
  models.py and never changes), so a re-delivered event overwrites the same object: writes are idempotent.
- Writes are gRPC batches with replace semantics: an upsert replaces the whole object, properties AND
  vectors (a metadata-only update must pass the stored vectors back, see ``states(with_vectors=True)``).
  Deletes are a batch delete by uuid.
- Properties: ``asset_id``, ``modality``, ``content_hash``, ``caption_hash``, ``model_id`` (text, field
  tokenization, filterable); ``text`` (word tokenization, BM25-searchable, the only property hybrid search
  reads); ``caption`` (an image's or clip's caption, word tokenization, returned with the asset);
  ``uri`` and ``metadata_json`` (text, not indexed; metadata_json is the exact metadata for round trips);
  ``event_time``, ``indexed_at`` (date, range-indexed; indexed_at is set at write time unless given);
  ``source_partition``, ``source_offset`` (int: the Kafka position that wrote the object);
  ``has_thumbnail`` (boolean) and ``thumbnail`` (blob, a small image preview; never returned by searches).
- Each metadata key also gets its own filterable property (schema.meta_property: ``meta_<key>``, escaped
  when Weaviate's case-insensitive names or reserved suffixes would clash), added to the schema the first
  time a key is seen, under a lock and with a re-read so concurrent writers never fail on it. Its type is
  fixed by the first value: str -> text (field tokenization), int or float -> number (3 then 3.5 never
  conflict), bool -> boolean, list[str] -> text[]. A later value of another type for the same key is a
  permanent per-object error (MetadataTypeConflict); the rest of the batch is stored.
- One named vector per embedding space (``clip``, ``clap``, ...): self-provided, HNSW, cosine distance.
  ensure_collection() adds a missing space to an existing collection (a model change adds a vector
  instead of breaking the collection). A space whose model embeds texts and images (or audio) has a second
  one, ``<space>_caption``, for the captions of its assets (models.vector_dims); assets without a caption
  simply have no vector there, and it is added to an existing collection the same way.
- Search: near_vector on one space (score = 1 - cosine distance = cosine similarity) or hybrid
  (BM25 on ``text`` fused with the vector search; score = Weaviate's relative-score fusion in [0, 1]), with
  filters (filters.py), a modality target and excluded ids, all combined with AND.

Tenants (settings.weaviate.multi_tenancy, fixed when the collection is created): one Weaviate tenant per
customer, each its own shard. Every data call then names a tenant (``tenant=``; a call without one, or with
one on a single-tenant collection, raises TenantMismatch); the same uuid in two tenants is two objects. A
tenant that does not exist reads as empty (no hits, nothing stored), so a caller cannot tell a tenant never
written to from one that does not exist; deleting a tenant (``delete_tenant``) drops its shard and nothing else.

Errors (errors.py): StoreUnavailable (retriable) when Weaviate is down or slow; per-asset WriteRejected /
MetadataTypeConflict returned by ``write``; InvalidFilter / InvalidQuery for bad searches.
"""

from services.store.errors import (
    InvalidFilter,
    InvalidQuery,
    MetadataTypeConflict,
    StoreError,
    StoreUnavailable,
    TenantMismatch,
    TenantNotFound,
    UnknownField,
    UnknownTenant,
    WriteRejected,
)
from services.store.filters import And, Condition, FilterExpr, Or, parse_filter
from services.store.models import (
    ASSET_NAMESPACE,
    AssetObject,
    Hit,
    SearchQuery,
    SegmentMatch,
    StoredAsset,
    StoredState,
    VideoSegments,
    asset_uuid,
    format_model_ids,
    parse_model_ids,
    vector_dims,
)
from services.store.store import AssetStore

__all__ = [
    "ASSET_NAMESPACE",
    "And",
    "AssetObject",
    "AssetStore",
    "Condition",
    "FilterExpr",
    "Hit",
    "InvalidFilter",
    "InvalidQuery",
    "MetadataTypeConflict",
    "Or",
    "SearchQuery",
    "SegmentMatch",
    "StoreError",
    "StoreUnavailable",
    "StoredAsset",
    "StoredState",
    "TenantMismatch",
    "TenantNotFound",
    "UnknownField",
    "UnknownTenant",
    "VideoSegments",
    "WriteRejected",
    "asset_uuid",
    "format_model_ids",
    "parse_filter",
    "parse_model_ids",
    "vector_dims",
]
