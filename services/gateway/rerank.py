"""Re-ranking: the first hits of a search scored again by a stronger model, within a time budget.

A search with ``rerank: true`` runs in two stages::

    Searcher: first stage (store search) -> RerankStage: the window's hits -> Reranker.score -> reordered page

- The window is the first ``rerank_top_n`` hits (the setting ``top_n`` by default), grown to offset + limit so
  the page is re-ranked, and capped by ``max_top_n``. The Searcher fetches max(window, offset + limit) hits.
- The stage gives the reranker the query's content (its text, its decoded image, or a stored asset's text or
  thumbnail for asset_id queries) and the candidates it reads: text assets by their text, image assets by
  their stored thumbnail (a PNG, JPEG or WebP of at most 160 px, decoded here). An audio query or candidate
  has no content an image-text model reads: an audio query comes back in retrieval order (degraded), audio
  candidates keep their places while the others are reordered around them.
- Re-scored candidates are sorted by score among the places they held; hits past the window follow in
  retrieval order; then the page is cut out. ``score`` stays the retrieval score, ``rerank_score`` is the
  reranker's.
- Whatever goes wrong (the reranker raises, runs past ``budget_s``, cannot read the query), the answer is
  the retrieval order with ``rerank.degraded`` true and a reason, never an error status.

The implementations (a bi-encoder and a cross-encoder) are in services/gateway/rerankers.py.

Exported (services.monitoring.metrics): ``xmodal_rerank_seconds`` (every re-ranking),
``xmodal_rerank_candidates`` (candidates re-scored), ``xmodal_rerank_degraded_total{reason}`` with reason
timeout, error or unsupported (a query or window it cannot read).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from PIL import Image

from services.config import RerankSettings
from services.errors import XmodalError
from services.fetch.images import decode_image
from services.gateway.models import Modifier, RerankInfo
from services.monitoring import metrics
from services.store.models import Hit, StoredAsset

log = logging.getLogger(__name__)

CandidateModality = Literal["image", "text"]
DegradedReason = Literal["timeout", "error", "unsupported"]
DEGRADED_REASONS: tuple[DegradedReason, ...] = ("timeout", "error", "unsupported")
_THUMBNAIL_READS = 8  # thumbnail reads in flight, all re-rankings of the gateway together
_REASON_CHARS = 200
_OBJECT_REPR = re.compile(r"\s*<[^<>]* object at 0x[0-9a-fA-F]+>")


class RerankError(XmodalError):
    """Re-ranking cannot go on (content gone, a query that cancels out); the stage answers retrieval order."""


@dataclass(frozen=True)
class Candidate:
    """One hit as a reranker reads it. ``text`` is the text of a text asset (None for images)."""

    asset_id: str
    content_hash: str
    modality: CandidateModality
    text: str | None = None


@dataclass(frozen=True)
class RerankQuery:
    """The query's content (its text or decoded image) and the modifier of a composed query."""

    content: str | Image.Image
    modifier: Modifier | None = None


@dataclass(frozen=True)
class AssetQuery:
    """More like this: the stage reads the stored asset's text or thumbnail."""

    asset_id: str


@dataclass(frozen=True)
class NoContent:
    """A query whose content no reranker here reads, e.g. ``an audio query``."""

    what: str


QueryInput = str | Image.Image | AssetQuery | NoContent


class Thumbnails(Protocol):
    """Decoded thumbnails of image candidates, in order (the stage reads them from the store)."""

    async def images(self, candidates: Sequence[Candidate]) -> list[Image.Image]: ...


class Reranker(Protocol):
    """Scores candidates against a query: higher is better, one score per candidate, in order.

    ``reads`` says which candidate modalities it scores against this query (empty: it cannot re-rank this
    query at all); the stage passes only those. ``score`` calls ``thumbnails.images`` for the image candidates
    whose content it needs, and runs its model on the device's inference thread.
    """

    name: str

    def reads(self, query: RerankQuery) -> frozenset[CandidateModality]: ...

    async def score(self, query: RerankQuery, candidates: Sequence[Candidate], thumbnails: Thumbnails
                    ) -> Sequence[float]: ...


class ContentStore(Protocol):
    """What the stage reads from the store (services.gateway.deps.SearchStore has it)."""

    async def get(self, asset_id: str, *, tenant: str | None = None) -> StoredAsset | None: ...

    async def thumbnail(self, asset_id: str, *, tenant: str | None = None) -> bytes | None: ...


@dataclass(frozen=True)
class Reranked:
    """The page, the reranker's score of each re-scored asset on it, and what the response says about it."""

    page: list[Hit]
    scores: Mapping[str, float]
    info: RerankInfo


def reorder(hits: Sequence[Hit], scores: Mapping[int, float]) -> list[Hit]:
    """The hits at the scored positions sorted by score (best first; ties keep retrieval order) into those
    same positions; every other hit stays where it was.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> hits = [Hit(a, 1.0, "image", {}, None, None, True, t, t) for a in "abcd"]
    >>> [h.asset_id for h in reorder(hits, {0: 0.1, 2: 0.9, 3: 0.5})]
    ['c', 'b', 'd', 'a']
    """
    slots = sorted(scores)
    best_first = sorted(slots, key=lambda i: (-scores[i], i))
    out = list(hits)
    for slot, source in zip(slots, best_first, strict=True):
        out[slot] = hits[source]
    return out


def describe(exc: BaseException) -> str:
    """A failure as a client may read it: type and message, without object reprs, at most 200 characters."""
    message = _OBJECT_REPR.sub("", str(exc)).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


class StoreThumbnails:
    """Thumbnails of one tenant's assets (None: single-tenant) read from the store (at most ``reads`` at a
    time) and decoded off the event loop."""

    def __init__(self, store: ContentStore, *, max_pixels: int, tenant: str | None = None,
                 reads: asyncio.Semaphore | None = None) -> None:
        self.store = store
        self.max_pixels = max_pixels
        self.tenant = tenant
        self._reads = reads or asyncio.Semaphore(_THUMBNAIL_READS)

    def of_tenant(self, tenant: str | None) -> StoreThumbnails:
        """The same reader (sharing its bound on reads) for ``tenant``'s assets."""
        return StoreThumbnails(self.store, max_pixels=self.max_pixels, tenant=tenant, reads=self._reads)

    async def images(self, candidates: Sequence[Candidate]) -> list[Image.Image]:
        blobs = await asyncio.gather(*(self.blob(c.asset_id) for c in candidates))
        return await asyncio.to_thread(self._decode_all, blobs)

    async def blob(self, asset_id: str) -> bytes:
        async with self._reads:
            data = await self.store.thumbnail(asset_id, tenant=self.tenant)
        if data is None:
            raise RerankError(f"asset {asset_id!r} has no thumbnail any more (deleted or replaced meanwhile)")
        return data

    def _decode_all(self, blobs: Sequence[bytes]) -> list[Image.Image]:
        return [decode_image(b, max_pixels=self.max_pixels) for b in blobs]


class RerankStage:
    """Runs one reranker for the Searcher: window, content, budget, reordering, page cut, metrics."""

    def __init__(self, reranker: Reranker, store: ContentStore, settings: RerankSettings, *,
                 max_pixels: int) -> None:
        self.reranker = reranker
        self.store = store
        self.settings = settings
        self.thumbnails = StoreThumbnails(store, max_pixels=max_pixels)
        for reason in DEGRADED_REASONS:
            metrics.RERANK_DEGRADED.labels(reason)  # exported from 0, so rates and alerts see every reason

    def window(self, top_n: int | None, offset: int, limit: int) -> int:
        """How many of the first hits are re-ranked: top_n (or the default), at least the page's end, at most
        max_top_n."""
        return min(max(top_n or self.settings.top_n, offset + limit), self.settings.max_top_n)

    async def run(self, query: QueryInput, modifier: Modifier | None, hits: Sequence[Hit], *, window: int,
                  offset: int, limit: int, tenant: str | None = None) -> Reranked:
        """Re-rank the first ``window`` of ``hits`` (retrieval order, best first; all of ``tenant``) and cut
        the page. Every store read of the stage is ``tenant``'s."""
        started = time.perf_counter()
        head = list(hits[:window])
        budget = self.settings.budget_s
        timeout = asyncio.timeout(budget)
        scores: dict[int, float] = {}
        try:
            async with timeout:
                scores, note = await self._scores(query, modifier, head, self.thumbnails.of_tenant(tenant))
        except TimeoutError as exc:
            if not timeout.expired():  # a TimeoutError of something inside (a store call), not the budget's
                note = self._degrade("error", f"error: {describe(exc)}", exc)
            else:
                note = self._degrade("timeout", f"timeout after {budget:g} s")
        # Re-ranking is optional: any failure falls back to retrieval order (logged, counted, reported).
        except Exception as exc:  # noqa: BLE001
            note = self._degrade("error", f"error: {describe(exc)}", exc)
        took = time.perf_counter() - started
        metrics.RERANK_SECONDS.observe(took)
        if scores:
            metrics.RERANK_CANDIDATES.observe(len(scores))
        page = (reorder(head, scores) + list(hits[window:]))[offset : offset + limit]
        by_asset = {head[i].asset_id: s for i, s in scores.items()}
        info = RerankInfo(name=self.reranker.name, took_ms=round(took * 1000, 2), candidates=len(scores),
                          degraded=not scores and bool(head), reason=note)
        return Reranked(page, {h.asset_id: by_asset[h.asset_id] for h in page if h.asset_id in by_asset}, info)

    def _degrade(self, reason: DegradedReason, note: str, exc: BaseException | None = None) -> str:
        metrics.RERANK_DEGRADED.labels(reason).inc()
        if exc is not None:
            log.warning("re-ranking with %s failed; answering in retrieval order: %s", self.reranker.name, note,
                        exc_info=exc)
        return note

    async def _scores(self, query: QueryInput, modifier: Modifier | None, head: list[Hit],
                      thumbnails: StoreThumbnails) -> tuple[dict[int, float], str | None]:
        """Scores by position in ``head``, and a note on what was left as it was (None: nothing)."""
        if not head:
            return {}, None
        content = await self._content(query, thumbnails)
        if isinstance(content, NoContent):
            return {}, self._degrade("unsupported", f"{content.what} cannot be re-ranked by {self.reranker.name}")
        rq = RerankQuery(content, modifier)
        reads = self.reranker.reads(rq)
        if not reads:
            kind = "an image" if isinstance(content, Image.Image) else "a text"
            what = f"{kind} query composed with a modifier" if modifier is not None else f"{kind} query"
            return {}, self._degrade("unsupported", f"{self.reranker.name} does not re-rank {what}")
        places = {i: c for i, h in enumerate(head) if (c := candidate(h, reads)) is not None}
        if not places:
            return {}, self._degrade("unsupported", f"none of the {len(head)} candidates is content "
                                     f"{self.reranker.name} reads here ({', '.join(sorted(reads))})")
        got = await self.reranker.score(rq, list(places.values()), thumbnails)
        if len(got) != len(places):
            raise RerankError(f"{self.reranker.name} gave {len(got)} scores for {len(places)} candidates")
        scores = {i: float(s) for i, s in zip(places, got, strict=True)}
        left = len(head) - len(scores)
        note = None if not left else (
            f"{left} of {len(head)} candidates keep their retrieval places (content {self.reranker.name} does "
            "not read here: audio, images without a thumbnail, or another modality)")
        return scores, note

    async def _content(self, query: QueryInput, thumbnails: StoreThumbnails) -> str | Image.Image | NoContent:
        if not isinstance(query, AssetQuery):
            return query
        stored = await self.store.get(query.asset_id, tenant=thumbnails.tenant)
        if stored is None:
            raise RerankError(f"asset {query.asset_id!r} is not in the store any more")
        if stored.modality == "text" and stored.text is not None:
            return stored.text
        if stored.modality == "image" and stored.has_thumbnail:
            [image] = await thumbnails.images([Candidate(stored.asset_id, stored.content_hash, "image")])
            return image
        return NoContent(f"a query by {stored.modality} asset {stored.asset_id!r}")


def candidate(hit: Hit, reads: frozenset[CandidateModality]) -> Candidate | None:
    """The hit as a candidate, when its modality is one the reranker reads and its content is stored."""
    if hit.modality == "text" and "text" in reads and hit.text is not None:
        return Candidate(hit.asset_id, hit.content_hash, "text", hit.text)
    if hit.modality == "image" and "image" in reads and hit.has_thumbnail:
        return Candidate(hit.asset_id, hit.content_hash, "image")
    return None
