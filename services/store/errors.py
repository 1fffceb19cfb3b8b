"""Errors of the store. Callers check ``retriable``; the classes say what to tell the user.

- :class:`StoreUnavailable` (retriable): Weaviate is down, slow, overloaded (429/5xx, gRPC UNAVAILABLE,
  deadline exceeded). The worker backs off and stops consuming; the gateway answers 503.
- :class:`InvalidFilter` (and :class:`UnknownField`), :class:`InvalidQuery`: the request is wrong (unknown
  field, type mismatch, unknown space, ...). The gateway answers 400 with the message.
- :class:`WriteRejected` and :class:`MetadataTypeConflict`: one object cannot be stored, ever. ``write``
  returns them per asset (it never raises them) so the worker dead-letters that asset and stores the rest.
- :class:`StoreError` itself: Weaviate refused a whole request for a reason retrying will not fix.
"""

from __future__ import annotations

from services.errors import TransientError, XmodalError


class StoreError(XmodalError):
    """Root of the store's errors; permanent unless a subclass says otherwise."""


class StoreUnavailable(StoreError, TransientError):
    """Weaviate cannot answer now (down, timeout, 429, 5xx, gRPC unavailable). Retry with backoff."""

    retriable = True
    cause = "store_unreachable"


class InvalidFilter(StoreError):
    """A filter names a field the collection does not have, or compares it with a value of another type."""


class UnknownField(InvalidFilter):
    """A filter names a metadata key no stored asset has (yet)."""


class InvalidQuery(StoreError):
    """A search or lookup that cannot run as asked (unknown space, wrong vector size, bad paging)."""


class TenantNotFound(InvalidQuery):
    """The tenant a call names does not exist in the collection (never written to, or deleted)."""


class TenantMismatch(StoreError):
    """A call with a tenant on a single-tenant collection, or without one on a multi-tenant collection."""


class WriteRejected(StoreError):
    """Weaviate (or the store's own checks) refused one object; retrying the same object fails again."""

    def __init__(self, asset_id: str, message: str) -> None:
        super().__init__(f"asset {asset_id!r}: {message}")
        self.asset_id = asset_id
        self.reason = message


class UnknownTenant(WriteRejected):
    """An upsert into a tenant that does not exist, with automatic tenant creation off."""


class MetadataTypeConflict(WriteRejected):
    """A metadata key already holds values of another type (e.g. a string where numbers are stored)."""
