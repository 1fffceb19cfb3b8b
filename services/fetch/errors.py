"""Errors of fetching and decoding content. ``reason`` is the dead-letter reason code the pipeline writes."""

from __future__ import annotations

from schemas.dead_letter import Reason
from services.errors import XmodalError


class FetchError(XmodalError):
    """Content could not be fetched or decoded.

    ``reason`` is one of the dead-letter codes (fetch_forbidden, fetch_not_found, fetch_failed, too_large,
    undecodable, invalid_event). ``retriable`` is True only inside the fetcher, for transient failures it
    retries itself; every FetchError that leaves :meth:`Fetcher.fetch` is final (retriable False), so the
    pipeline dead-letters the event.

    >>> err = FetchError(Reason.fetch_not_found, "http://example.com/a.png: HTTP 404")
    >>> err.reason.value, err.retriable
    ('fetch_not_found', False)
    """

    def __init__(self, reason: Reason, message: str, *, retriable: bool = False) -> None:
        super().__init__(message, retriable=retriable)
        self.reason: Reason = reason
