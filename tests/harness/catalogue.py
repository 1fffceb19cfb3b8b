"""The shapes and sounds samples written straight into the store: searchable catalogues without Kafka or a
worker.

For the gateway's tests, its latency runs and quick demos of the search page; production data arrives
through Kafka and the worker. Each asset gets two extra metadata fields so every filter kind has
something to work on: ``n`` (its index, a number) and an ``event_time`` of ``start + n minutes``.

The sounds sample is drawn by the generator the shipped sounds model was trained on
(services.embedding.sounds.world), from the held-out split, so that model finds it: clips (WAV) with
metadata caption (the class's canonical caption, e.g. "a low hum"), category (the kind: tone, beeps, siren,
noise, silence), loudness and split, plus one text per class.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from schemas.asset_event import AssetEvent, Modality
from services.config import segments_vector
from services.embedding.model import Embedder
from services.ingest.content import Content, Decoding, content_hash, prepare
from services.samples import shapes_sample, sounds_sample
from services.store.models import AssetObject, VideoSegments
from services.store.store import AssetStore

SAMPLE_START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SAMPLE_PARTITIONS = 2  # source_partition = n % 2, source_offset = n: looks like two Kafka partitions
MAX_PIXELS = 40_000_000  # FetchSettings.max_pixels' default


def _vectors(embedder: Embedder, prepared: Sequence[Content]) -> list[list[float]]:
    """One vector per prepared content; each modality present is embedded in one call (a CLAP has no image
    tower, a CLIP no audio one: a modality not in the sample is never asked for)."""
    images = [c.image for c in prepared if c.image is not None]
    clips = [c.audio for c in prepared if c.audio is not None]
    texts = [c.text for c in prepared if c.text is not None]
    rows = {
        Modality.image: iter(embedder.embed_images(images).tolist() if images else []),
        Modality.audio: iter(embedder.embed_audio(clips).tolist() if clips else []),
        Modality.text: iter(embedder.embed_texts(texts).tolist() if texts else []),
    }
    return [next(rows[c.modality]) for c in prepared]


def sample_objects(embedder: Embedder, events: Sequence[AssetEvent], *, max_pixels: int) -> list[AssetObject]:
    """Embed ``events`` (upserts with inline content) into objects for AssetStore.write. Blocks (the model)."""
    audio_rate = embedder.sampling_rate if "audio" in embedder.modalities else None
    decoding = Decoding(max_pixels=max_pixels, audio_rate=audio_rate)
    prepared = []
    for ev in events:
        raw = ev.text.encode() if ev.text is not None else base64.b64decode(ev.data or "")
        prepared.append(prepare(ev, raw, decoding))
    vectors = _vectors(embedder, prepared)
    objects = []
    for n, (ev, content, vector) in enumerate(zip(events, prepared, vectors, strict=True)):
        if ev.modality is None:
            raise ValueError(f"{ev.asset_id}: the sample holds upserts only")
        objects.append(AssetObject(
            asset_id=ev.asset_id, modality=ev.modality.value, text=ev.text, uri=None,
            metadata={**ev.metadata, "n": n}, content_hash=content_hash(ev.modality, str(n).encode()),
            model_id=embedder.model_id, event_time=SAMPLE_START + timedelta(minutes=n),
            source_partition=n % SAMPLE_PARTITIONS, source_offset=n, vectors={embedder.space: vector},
            thumbnail=content.thumbnail,
        ))
    return objects


def video_objects(embedder: Embedder, events: Sequence[AssetEvent], *, first_n: int = 0,
                  max_pixels: int = MAX_PIXELS) -> list[AssetObject]:
    """Embed video upserts (inline) as the worker does in an image space: each segment's keyframe into the
    ``<space>_segments`` multi-vector, their normalised mean as the space's own vector. Blocks (the model)."""
    decoding = Decoding(max_pixels=max_pixels)
    segments = segments_vector(embedder.space)
    objects = []
    for n, ev in enumerate(events, first_n):
        content = prepare(ev, base64.b64decode(ev.data or ""), decoding)
        video = content.video
        if video is None:
            raise ValueError(f"{ev.asset_id}: not a video")
        segs = embedder.embed_images([s.keyframe for s in video.segments]).tolist()
        mean = np.mean(np.asarray(segs, dtype=np.float32), axis=0)
        objects.append(AssetObject(
            asset_id=ev.asset_id, modality="video", text=None, uri=None, metadata={**ev.metadata, "n": n},
            content_hash=content.content_hash, model_id=embedder.model_id,
            event_time=SAMPLE_START + timedelta(minutes=n), source_partition=n % SAMPLE_PARTITIONS,
            source_offset=n, vectors={embedder.space: (mean / np.linalg.norm(mean)).tolist()},
            thumbnail=content.thumbnail,
            segments=VideoSegments(
                starts=tuple(s.start_s for s in video.segments), ends=tuple(s.end_s for s in video.segments),
                vectors={segments: segs}, duration_s=video.duration_s, playback=content.playback,
                playback_mime=content.playback_mime),
        ))
    return objects


async def index_shapes_sample(store: AssetStore, embedder: Embedder, *, per_class: int = 4,
                              max_pixels: int = MAX_PIXELS) -> list[AssetObject]:
    """Write the shapes sample (``per_class`` images per colour/shape plus one text each) into ``store``."""
    events = shapes_sample(per_class=per_class)
    return await _index(store, embedder, events, max_pixels=max_pixels)


async def index_sounds_sample(store: AssetStore, embedder: Embedder, *, per_class: int = 2) -> list[AssetObject]:
    """Write the sounds sample (``per_class`` clips per class plus one text each) into ``store``; ``embedder``
    is the audio space's model (a CLAP)."""
    return await _index(store, embedder, sounds_sample(per_class=per_class), max_pixels=MAX_PIXELS)


async def _index(store: AssetStore, embedder: Embedder, events: Sequence[AssetEvent], *,
                 max_pixels: int) -> list[AssetObject]:
    objects = await asyncio.to_thread(sample_objects, embedder, events, max_pixels=max_pixels)
    await store.ensure_collection()
    failures = await store.write(objects, [])
    if failures:
        raise RuntimeError(f"the sample could not be stored: {failures}")
    return objects


def clip_objects(embedder: Embedder) -> list[AssetObject]:
    """The clips sample (services.video_samples) as objects: keyframes embedded by ``embedder`` (an image space),
    segments and playback as the worker stores them. Blocks (decoding, the model)."""
    from services.store.models import VideoSegments
    from services.video_samples import clips_sample

    objects = []
    for n, ev in enumerate(clips_sample(now=SAMPLE_START)):
        content = prepare(ev, base64.b64decode(ev.data or ""), Decoding(max_pixels=MAX_PIXELS))
        video = content.video
        assert video is not None
        segments = embedder.embed_images([s.keyframe for s in video.segments]).tolist()
        mean = np.mean(np.asarray(segments), axis=0)
        objects.append(AssetObject(
            asset_id=ev.asset_id, modality="video", text=None, uri=None, metadata={**ev.metadata, "n": n},
            content_hash=content.content_hash, model_id=embedder.model_id, event_time=SAMPLE_START,
            source_partition=n % SAMPLE_PARTITIONS, source_offset=n,
            vectors={embedder.space: [float(x) for x in mean / np.linalg.norm(mean)]}, thumbnail=content.thumbnail,
            segments=VideoSegments(
                starts=tuple(s.start_s for s in video.segments), ends=tuple(s.end_s for s in video.segments),
                vectors={f"{embedder.space}_segments": segments}, duration_s=video.duration_s,
                playback=content.playback, playback_mime=content.playback_mime),
        ))
    return objects


async def index_clips_sample(store: AssetStore, embedder: Embedder) -> list[AssetObject]:
    """Write the clips sample into ``store`` (``embedder``: the image space's model)."""
    objects = await asyncio.to_thread(clip_objects, embedder)
    await store.ensure_collection()
    failures = await store.write(objects, [])
    if failures:
        raise RuntimeError(f"the clips could not be stored: {failures}")
    return objects
