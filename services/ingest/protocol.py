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
4. *Transient failures pause consumption and retry the same step.* A retriable error (Weaviate down, slow or
   overloaded, a dead letter not confirmed) tells the :class:`Flow` to pause (the worker takes no more batches
   meanwhile, so Faust's bounded buffers fill and it stops fetching; streams/agents.py) and retries the failed
   step with capped exponential backoff and jitter; nothing is acked meanwhile. When the step succeeds the
   flow resumes. A retried commit does not write a confirmed batch again nor send a confirmed dead letter
   twice (write.Progress). The batch in hand is retried from memory: its events are the first unacked offsets, so
   this is the same as re-reading them, without the round trip.

A crash at any point loses nothing: unacked events are delivered again and writes are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.config import BatchSettings
from services.errors import XmodalError
from services.ingest.prepare import Prepared, Preparer
from services.ingest.records import AssetKey, IngestStore, Record
from services.ingest.write import Progress, Writer
from services.monitoring import metrics
from services.store import StoredState

log = logging.getLogger("xmodal.ingest")
T = TypeVar("T")
Token = TypeVar("Token")  # what the consumer acks: a Faust event in the worker, anything in tests
Ack = Callable[[Sequence[Token]], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class Flow:
    """What the protocol tells the consumer about transient failures: the state and the metrics, which the
    worker reports on /readyz. Pausing needs nothing more: the consumer's loop waits in ``submit`` meanwhile.
    (Never pause Faust's partitions from :meth:`on_pause`: faust-streaming drops records fetched before such a
    pause and commits past them; streams/offsets.py.)

    Preparing batch N+1 and committing batch N run at the same time and may fail together (Weaviate is gone
    for both): each running :func:`until_done` is a *step*, and the flow stays paused while any step fails.
    :meth:`on_pause` and :meth:`on_resume` are called once per paused period.
    """

    def __init__(self) -> None:
        self._failing: dict[object, XmodalError] = {}  # step -> its last transient error
        self.since: float | None = None  # time.monotonic() when the current paused period began
        self._cause: str | None = None  # the cause xmodal_worker_pause_cause shows now

    @property
    def paused(self) -> bool:
        return bool(self._failing)

    @property
    def reason(self) -> str | None:
        """The cause and message of the newest failure, while paused."""
        if not self._failing:
            return None
        exc = list(self._failing.values())[-1]
        return f"{cause_of(exc)}: {exc}"

    def failed(self, step: object, exc: XmodalError) -> None:
        first = not self._failing
        self._failing.pop(step, None)
        self._failing[step] = exc  # newest last
        if first:
            self.since = time.monotonic()
            metrics.PAUSES.labels(cause_of(exc)).inc()
            metrics.PAUSED.set(1)
            log.warning("pausing consumption (%s): %s", cause_of(exc), exc)
            self.on_pause()
        self._show_cause(cause_of(exc))

    def succeeded(self, step: object) -> None:
        if self._failing.pop(step, None) is None:
            return
        if self._failing:  # still paused: by the newest failure of the steps still failing
            self._show_cause(cause_of(list(self._failing.values())[-1]))
            return
        log.warning("resuming consumption after %.1fs paused", time.monotonic() - (self.since or time.monotonic()))
        self.since = None
        metrics.PAUSED.set(0)
        self._show_cause(None)
        self.on_resume()

    def _show_cause(self, cause: str | None) -> None:
        if cause == self._cause:
            return
        if self._cause is not None:
            metrics.PAUSE_CAUSE.labels(self._cause).set(0)
        if cause is not None:
            metrics.PAUSE_CAUSE.labels(cause).set(1)
        self._cause = cause

    def on_pause(self) -> None:
        """Stop fetching (override)."""

    def on_resume(self) -> None:
        """Fetch again (override)."""


def cause_of(exc: BaseException) -> str:
    """The short label of a transient failure (services.errors.TransientError.cause)."""
    return str(getattr(exc, "cause", None) or type(exc).__name__)


class PendingWrites:
    """(tenant, asset_id) -> the state a prepared, not yet committed batch will leave (None: it deletes it)."""

    def __init__(self) -> None:
        self._by_asset: dict[AssetKey, tuple[Prepared, StoredState | None]] = {}

    def expect(self, prep: Prepared, states: dict[AssetKey, StoredState | None]) -> None:
        for key, state in states.items():
            self._by_asset[key] = (prep, state)

    def discard(self, prep: Prepared) -> None:
        """Forget what ``prep`` expected (after its commit, or before preparing it again)."""
        for key in prep.assets:
            entry = self._by_asset.get(key)
            if entry is not None and entry[0] is prep:
                del self._by_asset[key]

    def snapshot(self, keys: Iterable[AssetKey]) -> dict[AssetKey, StoredState | None]:
        return {k: self._by_asset[k][1] for k in keys if k in self._by_asset}

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
        """The caps of successive waits; :func:`until_done` waits a random part of each (full jitter).

        >>> from itertools import islice
        >>> list(islice(Backoff(0.5, 3.0).delays(), 5))
        [0.5, 1.0, 2.0, 3.0, 3.0]
        """
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


def jittered(cap: float, rng: random.Random) -> float:
    """Between half the cap and the cap ("equal jitter"): workers that failed together do not retry together,
    and a retry never comes much sooner than the schedule says."""
    return cap / 2 + rng.uniform(0, cap / 2)


async def until_done(step: Callable[[], Awaitable[T]], backoff: Backoff, *, what: str,
                     sleep: Sleep = asyncio.sleep, flow: Flow | None = None, rng: random.Random | None = None) -> T:
    """Run ``step`` until it succeeds; a retriable XmodalError pauses ``flow``, waits and tries again, anything
    else raises."""
    delays = backoff.delays()
    rng = rng or random.Random()
    me = object()  # this step, for the flow
    try:
        while True:
            try:
                return await step()
            except XmodalError as exc:
                if not exc.retriable:
                    raise
                delay = jittered(next(delays), rng)
                metrics.RETRIES.labels(cause_of(exc)).inc()
                if flow is not None:
                    flow.failed(me, exc)
                log.warning("transient failure (%s), retrying %s in %.1fs: %s", cause_of(exc), what, delay, exc)
                await sleep(delay)
    finally:
        if flow is not None:
            flow.succeeded(me)  # done, given up or cancelled: this step no longer holds the pause


class BatchProtocol(Generic[Token]):
    """Feed batches with :meth:`submit`; each batch's tokens are passed to ``ack`` once its effect is stored.

    ``submit`` returns once the batch is prepared and its commit has started, so the caller can take the next
    batch; :meth:`drain` waits for the last commit. Not safe for concurrent ``submit`` calls (one consumer).
    """

    def __init__(self, *, preparer: Preparer, writer: Writer, store: IngestStore, ack: Ack[Token],
                 backoff: Backoff, sleep: Sleep = asyncio.sleep, flow: Flow | None = None) -> None:
        self.preparer = preparer
        self.writer = writer
        self.store = store
        self.ack = ack
        self.backoff = backoff
        self.sleep = sleep
        self.flow = flow or Flow()
        self.pending = PendingWrites()
        self._inflight: asyncio.Task[frozenset[AssetKey]] | None = None

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

    async def close(self, grace_s: float) -> bool:
        """Shutting down: let the commit in flight finish within ``grace_s``, else abandon it (nothing of it is
        acked, so its events are delivered again). True when it finished."""
        if self._inflight is None:
            return True
        task, self._inflight = self._inflight, None
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("the last commit failed while shutting down: %r", task.exception())
            return not task.cancelled() and task.exception() is None
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)  # let it unwind (its step lets go of the pause)
        log.warning("abandoned the batch in flight after %.1fs of shutdown; its events were not acked and will be "
                    "consumed again", grace_s)
        return False

    async def process(self, records: Sequence[Record], tokens: Sequence[Token]) -> None:
        """One batch, prepared, committed and acked before returning (no overlap)."""
        await self.submit(records, tokens)
        await self.drain()

    async def read_states(self, keys: list[AssetKey]) -> dict[AssetKey, StoredState]:
        """(1) The stored states as the batches before this one leave them, read per tenant."""
        overlay = self.pending.snapshot(keys)  # before awaiting: see the module docstring
        by_tenant: dict[str | None, list[str]] = {}
        for key in keys:
            if key not in overlay:
                by_tenant.setdefault(key.tenant, []).append(key.asset_id)
        states: dict[AssetKey, StoredState] = {}
        for tenant, ids in by_tenant.items():
            found = await self.store.states(ids, with_vectors=True, tenant=tenant)
            states.update({AssetKey(tenant, a): st for a, st in found.items()})
        states.update({k: st for k, st in overlay.items() if st is not None})
        return states

    async def _prepare(self, records: Sequence[Record]) -> Prepared:
        prep = await until_done(lambda: self.preparer.prepare(records, self.read_states), self.backoff,
                                what=f"preparing a batch of {len(records)}", sleep=self.sleep, flow=self.flow)
        self.pending.expect(prep, prep.expected_states())
        return prep

    async def _commit(self, prep: Prepared, tokens: Sequence[Token]) -> frozenset[AssetKey]:
        progress = Progress()
        await until_done(lambda: self.writer.commit(prep, progress), self.backoff,
                         what=f"committing a batch of {len(prep.records)}", sleep=self.sleep, flow=self.flow)
        self.pending.discard(prep)  # the store holds what it expected now (or refused it)
        t1 = time.perf_counter()
        await self.ack(tokens)
        metrics.STAGE_SECONDS.labels("commit").observe(time.perf_counter() - t1)
        metrics.BATCH_SIZE.observe(len(prep.records))
        metrics.STAGE_SECONDS.labels("total").observe(time.perf_counter() - prep.started)
        for outcome, n in prep.report.outcomes.items():
            metrics.EVENTS.labels(outcome.value).inc(n)
        return progress.refused
