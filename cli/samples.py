"""Built-in sample sets for `xmodal publish --sample` and `xmodal demo` (and the tests' catalogues).

The shapes sample is drawn by the generator the shipped shapes model was trained on
(services.embedding.shapes.world), from the held-out split, so that model finds it.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime

from schemas.asset_event import AssetEvent
from services.embedding.shapes.world import COLORS, SHAPES, canonical_caption, generate_balanced


def shapes_sample(per_class: int = 4, *, seed: int = 2026, now: datetime | None = None) -> list[AssetEvent]:
    """The demo catalogue: per_class images of each of the 24 colour/shape pairs plus one text each.

    Every asset carries metadata color, shape, category (= shape) and split, so filters can use them.
    """
    when = now or datetime.now(UTC)
    events = []
    for i, s in enumerate(generate_balanced(per_class, seed=seed, split="val")):
        buf = io.BytesIO()
        s.image.save(buf, format="PNG")
        events.append(AssetEvent.model_validate({
            "schema_version": 1, "asset_id": f"shape-{s.color}-{s.shape}-{i:04d}", "op": "upsert",
            "modality": "image", "data": base64.b64encode(buf.getvalue()).decode(), "event_time": when,
            "metadata": {"color": s.color, "shape": s.shape, "category": s.shape, "split": s.split},
        }))
    for color in COLORS:
        for shape in SHAPES:
            events.append(AssetEvent.model_validate({
                "schema_version": 1, "asset_id": f"text-{color}-{shape}", "op": "upsert", "modality": "text",
                "text": canonical_caption(color, shape), "event_time": when,
                "metadata": {"color": color, "shape": shape, "category": shape, "split": "val"},
            }))
    return events
