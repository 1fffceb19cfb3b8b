"""Captions through the batch protocol: a vector per part, and only the part that changed is embedded again.

The model (the shipped shapes CLIP), decoding and fetcher are real; the store is in-memory (memory.py).
"""

from __future__ import annotations

import base64
import io
import random
from datetime import timedelta
from typing import Any

import pytest

from services.embedding.runner import AsyncEmbedder
from services.embedding.shapes import world
from services.ingest.plans import Outcome
from services.store import parse_model_ids
from tests.unit.ingest.test_protocol import T0, Harness, cut, embedder, record

__all__ = ["embedder"]  # the module-scoped model fixture, shared with test_protocol


def png(color: str, shape: str, seed: int = 1) -> str:
    buf = io.BytesIO()
    world.draw_image(random.Random(seed), color, shape).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def image(asset: str, seconds: int, data: str, caption: str | None, **metadata: Any) -> dict[str, Any]:
    event = {"schema_version": 1, "asset_id": asset, "modality": "image", "data": data, "metadata": metadata,
             "event_time": (T0 + timedelta(seconds=seconds)).isoformat()}
    return event if caption is None else {**event, "caption": caption}


def last_batch(h: Harness) -> tuple[dict[str, int], dict[Outcome, int]]:
    report = h.preparer.prepared[-1].report
    return dict(report.embedded), dict(report.outcomes)


RED_CIRCLE, BLUE_STAR = png("red", "circle"), png("blue", "star")


async def test_an_image_with_a_caption_gets_a_vector_per_part(embedder: AsyncEmbedder) -> None:
    h = Harness(embedder)
    await h.process([record(0, image("a", 0, RED_CIRCLE, "a photo of a blue star"))])
    obj = h.store.objects["a"]
    assert set(obj.vectors) == {"clip", "clip_caption"}
    assert obj.caption == "a photo of a blue star" and obj.caption_hash
    assert parse_model_ids(obj.model_id) == {"clip": embedder.model_id, "clip_caption": embedder.model_id}
    assert last_batch(h)[0] == {"image": 1, "text": 1}
    # the caption vector is the text tower's vector of the caption, as a text asset with that text gets
    text_vector = (await embedder.embed_texts(["a photo of a blue star"]))[0]
    assert obj.vectors["clip_caption"] == pytest.approx(text_vector.tolist(), abs=1e-5)


async def test_only_the_part_that_changed_is_embedded_again(embedder: AsyncEmbedder) -> None:
    h = Harness(embedder)
    await h.process([record(0, image("a", 0, RED_CIRCLE, "first caption"))])
    first = dict(h.store.objects["a"].vectors)

    await h.process([record(1, image("a", 1, RED_CIRCLE, "a photo of a blue star"))])  # caption changed
    embedded, outcomes = last_batch(h)
    assert embedded == {"text": 1} and outcomes == {Outcome.stored: 1}
    second = h.store.objects["a"].vectors
    assert second["clip"] == first["clip"] and second["clip_caption"] != first["clip_caption"]

    await h.process([record(2, image("a", 2, RED_CIRCLE, "a photo of a blue star", price=3))])  # metadata
    embedded, outcomes = last_batch(h)
    assert embedded == {} and outcomes == {Outcome.metadata_only: 1}
    assert h.store.objects["a"].vectors == second and h.store.objects["a"].metadata == {"price": 3}

    await h.process([record(3, image("a", 3, BLUE_STAR, "a photo of a blue star"))])  # image changed
    embedded, _ = last_batch(h)
    assert embedded == {"image": 1}
    assert h.store.objects["a"].vectors["clip_caption"] == second["clip_caption"]

    await h.process([record(4, image("a", 4, BLUE_STAR, None))])  # caption removed: its vector goes with it
    embedded, outcomes = last_batch(h)
    assert embedded == {} and outcomes == {Outcome.metadata_only: 1}
    obj = h.store.objects["a"]
    assert set(obj.vectors) == {"clip"} and obj.caption is None and obj.caption_hash == ""
    assert set(parse_model_ids(obj.model_id)) == {"clip"}


async def test_a_caption_added_later_embeds_the_caption_only(embedder: AsyncEmbedder) -> None:
    h = Harness(embedder)
    await h.process([record(0, image("a", 0, RED_CIRCLE, None))])
    await h.process([record(1, image("a", 1, RED_CIRCLE, "a red circle"))])
    assert last_batch(h)[0] == {"text": 1}
    assert set(h.store.objects["a"].vectors) == {"clip", "clip_caption"}


async def test_captions_share_the_text_towers_batch_with_text_assets(embedder: AsyncEmbedder) -> None:
    h = Harness(embedder)
    text = {"schema_version": 1, "asset_id": "t", "modality": "text", "text": "a red circle",
            "event_time": T0.isoformat()}
    await h.process([record(0, image("a", 0, RED_CIRCLE, "a red circle")), record(1, text, asset="t")])
    assert last_batch(h)[0] == {"image": 1, "text": 2}
    a, t = h.store.objects["a"], h.store.objects["t"]
    assert a.vectors["clip_caption"] == pytest.approx(t.vectors["clip"], abs=1e-5)
    assert set(t.vectors) == {"clip"}  # a text asset is its own caption: no second vector


def caption_events(rng: random.Random, n: int) -> list[Any]:
    """Image upserts on 3 assets whose image, caption and metadata change independently; some stale."""
    records = []
    for offset in range(n):
        asset = rng.choice("abc")
        t = offset + rng.randint(-4, 0)
        data = rng.choice([RED_CIRCLE, BLUE_STAR])
        caption = rng.choice([None, "a red circle", "a blue star"])
        records.append(record(offset, image(asset, t, data, caption, n=rng.randint(0, 2)), asset=asset))
    return records


@pytest.mark.parametrize("seed", [1, 2])
async def test_captioned_batches_overlapped_end_exactly_like_batches_in_turn(
    embedder: AsyncEmbedder, seed: int
) -> None:
    rng = random.Random(seed)
    batches = cut(caption_events(rng, 30), rng)
    in_turn = Harness(embedder)
    for batch in batches:
        await in_turn.process(batch)
    overlapped = Harness(embedder, hold_writes=True)
    await overlapped.overlapped(batches)
    assert overlapped.store.log == in_turn.store.log
    assert overlapped.store.summary() == in_turn.store.summary()
    for asset, obj in in_turn.store.objects.items():
        assert overlapped.store.objects[asset].vectors == obj.vectors
        assert ("clip_caption" in obj.vectors) == (obj.caption is not None)
