"""The batch protocol: batch N is written while batch N+1 is prepared, with the result of doing them in turn.

The model (prepare) and Weaviate (commit) then work at the same time. This module is the whole protocol;
what one step does is in prepare.py (parse, resolve, fetch, decode, embed) and write.py (store writes, dead
letters). The consumer adapter (streams/agents.py) only feeds batches in and passes an ``ack`` callback.

Why the overlap gives the same result as preparing and committing one batch after the other:

1. *Reads see pending writes.* Preparing N+1 reads each asset's stored state (to skip stale events and to
   reuse vectors). While N is being written the store may not hold N's result yet, so reads go through
   :class:`PendingWrites`: the states N will leave, registered when N was prepared, take precedence over the
   store. The overlay is copied before the store is read, so a commit that finishes meanwhile (and drops
   its entries) cannot leave an asset in neither.
2. *Commits are ordered.* At most one commit runs. N+1's commit starts only after N's has finished, and every
   event of N is acked (``ack``) only after N's writes and dead letters are confirmed. Offsets are therefore
   committed in order and never past an effect that is not stored.
3. *A refused write makes the next batch re-prepare.* Weaviate may refuse one object of N (say, a metadata
   value of the wrong type); N's event is then dead-lettered and the store keeps the old state. If N+1 read
   that asset through the overlay, its decisions assumed a write that did not happen, so N+1 is prepared
   again from the store before it is committed.
4. *Transient failures retry the same step.* A retriable error (Weaviate down or slow, a dead letter not
   confirmed) retries the failed step with capped exponential backoff; nothing is acked meanwhile. A retried
   commit does not write a confirmed batch again nor send a confirmed dead letter twice (write.Progress).

A crash at any point loses nothing: unacked events are delivered again and writes are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.config import BatchSettings
from services.errors import XmodalError
from services.ingest.prepare import Prepared, Preparer
from services.ingest.records import IngestStore, Record
from services.ingest.write import Progress, Writer
from services.monitoring import metrics
from services.store import StoredState

log = logging.getLogger("xmodal.ingest")
T = TypeVar("T")
Token = TypeVar("Token")  # what the consumer acks: a Faust event in the worker, anything in tests
Ack = Callable[[Sequence[Token]], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class PendingWrites:
    """asset_id -> the state a prepared, not yet committed batch will leave (None: it deletes the asset)."""

    def __init__(self) -> None:
        self._by_asset: dict[str, tuple[Prepared, StoredState | None]] = {}

    def expect(self, prep: Prepared, states: dict[str, StoredState | None]) -> None:
        for asset_id, state in states.items():
            self._by_asset[asset_id] = (prep, state)

    def discard(self, prep: Prepared) -> None:
        """Forget what ``prep`` expected (after its commit, or before preparing it again)."""
        for asset_id in prep.assets:
            entry = self._by_asset.get(asset_id)
            if entry is not None and entry[0] is prep:
                del self._by_asset[asset_id]

    def snapshot(self, asset_ids: Iterable[str]) -> dict[str, StoredState | None]:
        return {a: self._by_asset[a][1] for a in asset_ids if a in self._by_asset}

    def __len__(self) -> int:
        return len(self._by_asset)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff between retries of a step that failed transiently."""

    first_s: float
    max_s: float

    @classmethod
    def of(cls, settings: BatchSettings) -> Backoff:
        return cls(settings.retry_backoff_s, settings.retry_backoff_max_s)

    def delays(self) -> Iterator[float]:
        """
        >>> from itertools import islice
        >>> list(islice(Backoff(0.5, 3.0).delays(), 5))
        [0.5, 1.0, 2.0, 3.0, 3.0]
        """
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


async def until_done(step: Callable[[], Awaitable[T]], backoff: Backoff, *, what: str,
                     sleep: Sleep = asyncio.sleep) -> T:
    """Run ``step`` until it succeeds; a retriable XmodalError waits and tries again, anything else raises."""
    delays = backoff.delays()
    while True:
        try:
            result = await step()
        except XmodalError as exc:
            if not exc.retriable:
                raise
            delay = next(delays)
            metrics.RETRIES.labels(type(exc).__name__).inc()
            metrics.IN_BACKOFF.set(1)
            log.warning("transient failure, retrying %s in %.1fs: %s", what, delay, exc)
            await sleep(delay)
            continue
        metrics.IN_BACKOFF.set(0)
        return result


class BatchProtocol(Generic[Token]):
    """Feed batches with :meth:`submit`; each batch's tokens are passed to ``ack`` once its effect is stored.

    ``submit`` returns once the batch is prepared and its commit has started, so the caller can take the next
    batch; :meth:`drain` waits for the last commit. Not safe for concurrent ``submit`` calls (one consumer).
    """

    def __init__(self, *, preparer: Preparer, writer: Writer, store: IngestStore, ack: Ack[Token],
                 backoff: Backoff, sleep: Sleep = asyncio.sleep) -> None:
        self.preparer = preparer
        self.writer = writer
        self.store = store
        self.ack = ack
        self.backoff = backoff
        self.sleep = sleep
        self.pending = PendingWrites()
        self._inflight: asyncio.Task[frozenset[str]] | None = None

    async def submit(self, records: Sequence[Record], tokens: Sequence[Token]) -> None:
        prep = await self._prepare(records)
        if self._inflight is not None:
            refused = await self._inflight  # (2) in order: the previous commit ends before this one starts
            self._inflight = None
            if refused & prep.assets:  # (3) prep read states that batch did not manage to write
                self.pending.discard(prep)
                prep = await self._prepare(records)
        self._inflight = asyncio.create_task(self._commit(prep, tokens), name="xmodal-commit")

    async def drain(self) -> None:
        """Wait until the last submitted batch is committed and acked (raises what its commit raised)."""
        if self._inflight is not None:
            task, self._inflight = self._inflight, None
            await task

    async def process(self, records: Sequence[Record], tokens: Sequence[Token]) -> None:
        """One batch, prepared, committed and acked before returning (no overlap)."""
        await self.submit(records, tokens)
        await self.drain()

    async def read_states(self, asset_ids: list[str]) -> dict[str, StoredState]:
        """(1) The stored states as the batches before this one leave them."""
        overlay = self.pending.snapshot(asset_ids)  # before awaiting: see the module docstring
        missing = [a for a in asset_ids if a not in overlay]
        states = await self.store.states(missing, with_vectors=True) if missing else {}
        states.update({a: st for a, st in overlay.items() if st is not None})
        return states

    async def _prepare(self, records: Sequence[Record]) -> Prepared:
        prep = await until_done(lambda: self.preparer.prepare(records, self.read_states), self.backoff,
                                what=f"preparing a batch of {len(records)}", sleep=self.sleep)
        self.pending.expect(prep, prep.expected_states())
        return prep

    async def _commit(self, prep: Prepared, tokens: Sequence[Token]) -> frozenset[str]:
        progress = Progress()
        await until_done(lambda: self.writer.commit(prep, progress), self.backoff,
                         what=f"committing a batch of {len(prep.records)}", sleep=self.sleep)
        self.pending.discard(prep)  # the store holds what it expected now (or refused it)
        t1 = time.perf_counter()
        await self.ack(tokens)
        metrics.STAGE_SECONDS.labels("commit").observe(time.perf_counter() - t1)
        metrics.BATCH_SIZE.observe(len(prep.records))
        metrics.STAGE_SECONDS.labels("total").observe(time.perf_counter() - prep.started)
        for outcome, n in prep.report.outcomes.items():
            metrics.EVENTS.labels(outcome.value).inc(n)
        return progress.refused
