"""The built-in sample sets of `xmodal publish --sample shapes|scenes` and the demo."""

from __future__ import annotations

from datetime import UTC, datetime

from services.samples import scenes_entries, scenes_sample, shapes_sample


def test_shapes_sample_carries_filterable_metadata() -> None:
    events = shapes_sample(per_class=1)
    images = [e for e in events if e.modality is not None and e.modality.value == "image"]
    texts = [e for e in events if e.text is not None]
    assert len(images) == len(texts) == 24
    assert {tuple(sorted(e.metadata)) for e in events} == {("category", "color", "shape", "split")}
    assert len({e.asset_id for e in events}) == len(events)


def test_shapes_sample_is_reproducible() -> None:
    when = datetime(2026, 11, 27, tzinfo=UTC)
    assert shapes_sample(per_class=1, now=when) == shapes_sample(per_class=1, now=when)


def test_scenes_sample_has_pictures_and_a_text_per_class_with_true_metadata() -> None:
    entries = scenes_entries(classes=6, per_class=2)
    pictures = [e for e in entries if e.event.modality is not None and e.event.modality.value == "image"]
    texts = [e for e in entries if e.event.text is not None]
    assert (len(pictures), len(texts)) == (12, 6)
    assert len({e.event.asset_id for e in entries}) == len(entries)
    for e in pictures:
        assert e.scene is not None
        first = e.scene.things[0]
        meta = e.event.metadata
        assert (meta["color"], meta["shape"], meta["size"], meta["style"]) == (
            first.color, first.shape, first.size, first.style)
        assert meta["things"] == len(e.scene.things) and meta.get("relation") == e.scene.relation
    # the text of each class is true of the pictures of that class (and written the canonical way)
    for t in texts:
        assert t.claim is not None and t.event.text is not None
        assert sum(t.claim.true_of(p.scene) for p in pictures if p.scene is not None) >= 2
        assert t.event.text.startswith("a photo of ")


def test_scenes_sample_is_reproducible_and_half_have_two_things() -> None:
    when = datetime(2026, 11, 27, tzinfo=UTC)
    assert scenes_sample(classes=4, per_class=1, now=when) == scenes_sample(classes=4, per_class=1, now=when)
    counts = [e.metadata["things"] for e in scenes_sample(now=when) if e.text is None]
    assert counts.count(2) == counts.count(1)
