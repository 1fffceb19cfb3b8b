"""Preparing a batch: everything before the write. Parse, resolve each asset's events, fetch, decode, embed.

The result, :class:`Prepared`, holds one plan per asset (services.ingest.plans) and the dead letters found so
far. Nothing here writes or acks; the order of prepare and commit is services.ingest.protocol's job, which
also decides what "the stored state" is while an earlier batch is still being written (``read_states``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.asset_event import Modality, Op
from schemas.dead_letter import Reason
from services.config import (
    SEGMENTS_SUFFIX,
    BatchSettings,
    FetchSettings,
    caption_vector,
    segments_vector,
    takes_captions,
    takes_video,
)
from services.embedding.runner import AsyncEmbedder
from services.errors import ConfigError
from services.fetch.fetcher import Fetcher
from services.fetch.video import VideoLimits
from services.ingest.collapse import Resolution, candidates_by_asset, resolve
from services.ingest.content import Content, Decoding, load_bytes, prepare_all, split_sources
from services.ingest.embed import embed_isolating_poison
from services.ingest.parse import Rejected, parse
from services.ingest.plans import (
    BatchReport,
    Delete,
    Embeddable,
    Letter,
    Outcome,
    Plan,
    Poisoned,
    Upsert,
)
from services.ingest.records import AssetKey, Parsed, Record
from services.monitoring import metrics
from services.monitoring.timing import observe_queue_wait, timed
from services.store import StoredState, parse_model_ids

#: (tenant, asset_id) keys -> their stored states (absent: nothing stored). The protocol's overlay-aware read.
ReadStates = Callable[[list[AssetKey]], Awaitable[dict[AssetKey, StoredState]]]


#: Threads one batch's decoding is spread over (one per core, at most 4: decoding shares the cores with the
#: model's inference thread), and the least encoded content worth a thread of its own (~10 ms of decoding).
_DECODE_THREADS = min(4, os.cpu_count() or 1)
_MIN_PART_BYTES = 256 * 1024

@dataclass
class Prepared:
    """A batch with every decision made and every vector computed, not yet written."""

    records: Sequence[Record]
    started: float  # perf_counter at the start, for the batch's total time
    assets: frozenset[AssetKey] = frozenset()  # every asset whose state this batch read (it has events here)
    plans: list[Plan] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    report: BatchReport = field(default_factory=BatchReport)

    def expected_states(self) -> dict[AssetKey, StoredState | None]:
        """(tenant, asset_id) -> the state this batch's write leaves (None: deleted). Poisoned assets keep theirs."""
        out: dict[AssetKey, StoredState | None] = {}
        for plan in self.plans:
            if isinstance(plan, Upsert):
                out[plan.parsed.key] = plan.expected_state()
            elif isinstance(plan, Delete):
                out[plan.parsed.key] = None
        return out


class Preparer:
    """Turns records into a :class:`Prepared` batch with the configured embedding spaces.

    An upsert gets a vector in every space whose model accepts its modality (a text in clip and in clap);
    a modality no space accepts is dead-lettered as ``unsupported_modality``. Its caption, if any, gets a
    vector (``<space>_caption``) in every such space whose model also embeds texts, by that text tower.
    """

    def __init__(self, *, embedders: Sequence[AsyncEmbedder], fetcher: Fetcher, batch: BatchSettings,
                 decoding: Decoding, multi_tenant: bool = False) -> None:
        if not embedders:
            raise ConfigError("no embedding space is enabled: set XMODAL_SPACES (see services/config.py)")
        self.embedders = {e.space: e for e in embedders}
        self.models = {e.space: e.model_id for e in embedders}  # named vector -> the model that makes it
        self.models |= {caption_vector(e.space): e.model_id for e in embedders if takes_captions(e.modalities)}
        self.models |= {segments_vector(e.space): e.model_id for e in embedders if takes_video(e.modalities)}
        self.spaces_of: dict[Modality, list[str]] = {}
        self.caption_spaces_of: dict[Modality, list[str]] = {}  # the spaces that embed its assets' captions
        for e in embedders:
            for modality in sorted(e.modalities):
                self.spaces_of.setdefault(Modality(modality), []).append(e.space)
                if modality != "text" and "text" in e.modalities:
                    self.caption_spaces_of.setdefault(Modality(modality), []).append(e.space)
        # A video is embedded by its keyframes (image spaces) and, when it has sound, by that (audio spaces);
        # a worker without an image space cannot take videos.
        if Modality.image in self.spaces_of:
            self.spaces_of[Modality.video] = [e.space for e in embedders if takes_video(e.modalities)]
        self.fetcher = fetcher
        self.decoding = decoding
        self.multi_tenant = multi_tenant
        self._fetch_slots = asyncio.Semaphore(batch.fetch_concurrency)

    @classmethod
    def decoding_for(cls, embedders: Sequence[AsyncEmbedder], fetch: FetchSettings) -> Decoding:
        """Decoding limits, with audio decoded at the rate of the spaces that take audio (they must agree)."""
        rates = {e.sampling_rate for e in embedders if "audio" in e.modalities and e.sampling_rate}
        if len(rates) > 1:
            raise ConfigError(f"the audio spaces expect different sampling rates {sorted(rates)}; xmodal decodes "
                              "each clip once: configure audio models of one rate")
        video = VideoLimits(
            max_bytes=fetch.max_video_bytes, max_seconds=fetch.max_video_seconds, max_pixels=fetch.max_video_pixels,
            max_frames=fetch.max_video_frames, scene_threshold=fetch.segment_scene_threshold,
            min_segment_s=fetch.segment_min_seconds, max_segment_s=fetch.segment_max_seconds,
            max_segments=fetch.max_video_segments,
        )
        return Decoding(max_pixels=fetch.max_pixels, audio_rate=rates.pop() if rates else None,
                        max_audio_s=fetch.max_audio_seconds, max_audio_bytes=fetch.max_audio_bytes, video=video,
                        max_playback_bytes=fetch.max_video_playback_bytes)

    async def prepare(self, records: Sequence[Record], read_states: ReadStates) -> Prepared:
        prep = Prepared(records=records, started=time.perf_counter())
        observe_queue_wait(r.timestamp_ms for r in records)
        parsed: list[Parsed] = []
        for record in records:
            try:
                parsed.append(parse(record, self.spaces_of, multi_tenant=self.multi_tenant))
            except Rejected as rej:
                prep.letters.append(Letter(record, rej.reason, rej.error))
        groups = candidates_by_asset(parsed)
        prep.assets = frozenset(groups)
        stored = await timed("lookup", read_states(list(groups)))
        planned = await timed("fetch", self._plan(prep, groups, stored))
        await timed("embed", self._embed(prep, planned))
        return prep

    async def _plan(self, prep: Prepared, groups: dict[AssetKey, list[Parsed]], stored: dict[AssetKey, StoredState]
                    ) -> list[Embeddable | Upsert | Delete]:
        """Resolve each asset's events as if applied one by one; an asset whose stored state stays has no plan.

        Every upsert that would be applied is checked (fetched and decoded), not only the last one: a bad
        event is dead-lettered whether or not a later event in the same batch supersedes it, so what lands
        in the DLQ does not depend on how events were batched. An unusable upsert changes nothing, so the
        asset's events are resolved again without it until every applied upsert is usable. Each round loads
        what every asset newly applies in one go (:meth:`_load_all`).
        """
        assets = [_Asset(cands, stored.get(key)) for key, cands in groups.items()]
        unsettled = assets
        while unsettled:
            todo = [(a, c) for a in unsettled for c in a.resolve()]
            outcomes = await self._load_all([(c, a.state) for a, c in todo]) if todo else []
            for (asset, cand), out in zip(todo, outcomes, strict=True):
                if isinstance(out, Rejected):
                    prep.letters.append(Letter(cand.record, out.reason, out.error))
                    asset.unusable.add(cand.record.offset)
                else:
                    asset.loaded[cand.record.offset] = out
            unsettled = list({id(a): a for a, _ in todo}.values())  # resolved again; the others are final
        planned: list[Embeddable | Upsert | Delete] = []
        for asset in assets:
            res = asset.resolution
            prep.report.add(Outcome.stale, len(res.stale))
            prep.report.add(Outcome.superseded, len(res.superseded))
            if res.final is not None:
                planned.append(Delete(res.final) if res.final.event.op is Op.delete
                               else asset.loaded[res.final.record.offset])
        return planned

    async def _load_all(self, todo: Sequence[tuple[Parsed, StoredState | None]]
                        ) -> list[Embeddable | Upsert | Rejected]:
        """Fetch the upserts' content (the remote ones, concurrently), then decode all of it in one thread hand-off
        (one per event cost the event loop a wake-up each); keep the stored vectors of spaces where only
        metadata changed."""
        sources: list[bytes | Rejected | None] = [None] * len(todo)  # None: inline content, decoded in the thread
        remote = [i for i, (cand, _) in enumerate(todo) if cand.event.uri is not None]
        if remote:
            fetched = await asyncio.gather(*(self._fetch(todo[i][0]) for i in remote), return_exceptions=True)
            for i, got in zip(remote, fetched, strict=True):
                if isinstance(got, BaseException) and not isinstance(got, Rejected):
                    raise got
                sources[i] = got
        parts = split_sources([(cand.event, src) for (cand, _), src in zip(todo, sources, strict=True)],
                              max_parts=_DECODE_THREADS, min_part_bytes=_MIN_PART_BYTES)
        decoded = await asyncio.gather(*(asyncio.to_thread(prepare_all, part, self.decoding) for part in parts))
        contents = [c for part in decoded for c in part]
        return [c if isinstance(c, Rejected) else self._embeddable(cand, state, c)
                for (cand, state), c in zip(todo, contents, strict=True)]

    async def _fetch(self, cand: Parsed) -> bytes:
        async with self._fetch_slots:
            return await load_bytes(cand.event, self.fetcher)

    def _embeddable(self, cand: Parsed, state: StoredState | None, content: Content) -> Embeddable | Upsert:
        """Keep the stored vectors of what did not change (the content, the caption, or both: a metadata-only
        change embeds nothing)."""
        spaces = self.spaces_of[content.modality]
        if content.video is not None:
            # A video's vectors are all derived from its segments, which are embedded again on every upsert
            # (the segment rule's settings may have changed): one write replaces them all.
            with_sound = content.video.audio is not None
            todo_video = tuple(s for s in spaces if "image" in self.embedders[s].modalities
                               or (with_sound and "audio" in self.embedders[s].modalities))
            return Embeddable(cand, content, state, todo_video, {}, ())
        captioned = self.caption_spaces_of.get(content.modality, []) if content.caption is not None else []
        reused: dict[str, list[float]] = {}
        if state is not None:
            made_by = parse_model_ids(state.model_id, state.vectors)

            def still_valid(names: list[str]) -> dict[str, list[float]]:
                return {n: state.vectors[n] for n in names if n in state.vectors and made_by.get(n) == self.models[n]}

            if state.content_hash == content.content_hash:
                reused |= still_valid(spaces)
            if captioned and state.caption_hash == content.caption_hash:
                reused |= still_valid([caption_vector(s) for s in captioned])
        todo = tuple(s for s in spaces if s not in reused)
        caption_todo = tuple(s for s in captioned if caption_vector(s) not in reused)
        item = Embeddable(cand, content, state, todo, reused, caption_todo)
        return item if todo or caption_todo else Upsert.of(item, {}, self.models)

    async def _embed(self, prep: Prepared, planned: list[Embeddable | Upsert | Delete]) -> None:
        """Run each space's model once per modality over the batch's embeddable upserts; fill prep.plans."""
        prep.plans = [p for p in planned if not isinstance(p, Embeddable)]
        todo = [p for p in planned if isinstance(p, Embeddable)]
        computed: dict[int, dict[str, list[float]]] = {id(p): {} for p in todo}
        segments: dict[int, dict[str, dict[int, list[float]]]] = {}  # item -> segments vector -> index -> vector
        poisoned: dict[int, str] = {}
        for space, embedder in self.embedders.items():
            for modality, run in (("text", embedder.embed_texts), ("image", embedder.embed_images),
                                  ("audio", embedder.embed_audio)):
                jobs = [_Job(p, space, _model_input(p)) for p in todo
                        if space in p.todo and p.content.modality == modality]
                if modality == "text":  # captions share the text tower's forward passes with text assets
                    jobs += [_Job(p, caption_vector(space), p.content.caption) for p in todo
                             if space in p.caption_todo]
                if modality in embedder.modalities:  # videos' keyframes or sound share the forward passes
                    jobs += [_Job(p, segments_vector(space), x, i) for p in todo if space in p.todo
                             for i, x in enumerate(_segment_inputs(p, modality))]
                if not jobs:
                    continue
                vectors, failed = await embed_isolating_poison(run, [job.model_input for job in jobs])
                for job, vec in zip(jobs, vectors, strict=True):
                    if vec is not None and job.segment >= 0:
                        segments.setdefault(id(job.item), {}).setdefault(job.vector, {})[job.segment] = vec
                    elif vec is not None:
                        computed[id(job.item)][job.vector] = vec
                for idx, error in failed.items():
                    poisoned.setdefault(id(jobs[idx].item), f"{jobs[idx].vector}: {error}")
                metrics.MODEL_RUNS.labels(modality).inc(len(jobs) - len(failed))
                prep.report.embedded[modality] += len(jobs) - len(failed)
        for item in todo:
            why = poisoned.get(id(item))
            if why is None:
                multi = _ordered(segments.get(id(item), {}))
                # A video's own vector in each space is the mean of its segments': "the whole video".
                whole = {vector_space(name): _mean_unit(vecs) for name, vecs in multi.items()}
                prep.plans.append(Upsert.of(item, {**computed[id(item)], **whole}, self.models, segments=multi))
            else:
                prep.plans.append(Poisoned(item.parsed, why))
                prep.letters.append(Letter(item.parsed.record, Reason.poison, why, attempts=2))


@dataclass
class _Asset:
    """One asset's events while a batch is prepared: what is loaded, what turned out unusable."""

    candidates: list[Parsed]
    state: StoredState | None
    loaded: dict[int, Embeddable | Upsert] = field(default_factory=dict)  # offset -> the loaded upsert
    unusable: set[int] = field(default_factory=set)  # offsets of dead-lettered upserts
    resolution: Resolution = field(default_factory=lambda: Resolution(None))

    def resolve(self) -> list[Parsed]:
        """Resolve again; return the applied upserts not loaded yet."""
        stored_time = self.state.event_time if self.state else None
        self.resolution = resolve(self.candidates, stored_time=stored_time, skip=self.unusable)
        return [c for c in self.resolution.applied if c.event.op is Op.upsert and c.record.offset not in self.loaded]


@dataclass(frozen=True)
class _Job:
    """One model input of a batch: the upsert it belongs to, the named vector it makes, the input itself."""

    item: Embeddable
    vector: str
    model_input: Any
    segment: int = -1  # a video's segment this input is (its keyframe or its sound); -1: not a segment


def _segment_inputs(item: Embeddable, modality: str) -> list[Any]:
    """A video's model inputs for ``modality``: its keyframes (image) or its segments' sound (audio)."""
    video = item.content.video
    if video is None:
        return []
    if modality == "image":
        return [s.keyframe for s in video.segments]
    if modality == "audio" and video.audio is not None:
        return [video.segment_audio(i) for i in range(len(video.segments))]
    return []


def _ordered(by_index: dict[str, dict[int, list[float]]]) -> dict[str, list[list[float]]]:
    return {name: [vecs[i] for i in sorted(vecs)] for name, vecs in by_index.items()}


def vector_space(segments_name: str) -> str:
    return segments_name.removesuffix(SEGMENTS_SUFFIX)


def _mean_unit(vectors: list[list[float]]) -> list[float]:
    mean = np.mean(np.asarray(vectors, dtype=np.float32), axis=0)
    norm = float(np.linalg.norm(mean))
    return [float(x) for x in (mean / norm if norm > 1e-12 else mean)]


def _model_input(item: Embeddable) -> Any:
    c = item.content
    if c.video is not None:
        return None  # a video's inputs are its segments' (_segment_inputs)
    return c.image if c.image is not None else c.audio if c.audio is not None else c.text
