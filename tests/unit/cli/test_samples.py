"""The built-in shapes sample set of `xmodal publish --sample shapes` and the demo."""

from __future__ import annotations

from datetime import UTC, datetime

from cli.samples import shapes_sample


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
