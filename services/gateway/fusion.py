"""Which of an asset's vectors a search reads (its ``part``), and fusing the content and caption rankings.

An image or audio asset may have two vectors in a space: its content's (``clip``) and its caption's
(``clip_caption``, the space's text tower on the caption). ``part`` picks one, or ``fused`` searches both
and merges the two rankings by reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009):

    score(asset) = sum over the rankings that hold it of 1 / (k + rank), rank from 1, k = 60

Ranks are fused, not scores, because the two parts' cosines lie on different scales: in a CLIP-family
space a text query is much closer to a caption (text to text) than to any image (text to image), so a sum
or a minimum of raw similarities would let captions win every time. Each store ranking holds an asset
once (one object per asset), and the fused ranking is keyed by asset, so every asset comes back once.

Why not Weaviate's own multi-target search (``target_vector=[clip, clip_caption]``): in v1.39
(adapters/repos/db/shard_combine_multi_target.go) the sum, average, manual-weight and relative-score
joins look up each candidate's distance in every target and drop an object that lacks one of the vectors
(the lookup fails), so an image without a caption would vanish from fused searches; the minimum join keeps
it but compares raw distances across the two scales.

>>> from datetime import datetime, UTC
>>> def h(a, s):
...     t = datetime(2026, 1, 1, tzinfo=UTC)
...     return Hit(a, s, "image", {}, None, None, False, t, t)
>>> f = reciprocal_rank_fusion({"content": [h("x", 0.3), h("y", 0.2)], "caption": [h("y", 0.9)]})
>>> [(x.asset_id, round(x.score, 4)) for x in f.hits], f.parts["y"]
([('y', 0.0325), ('x', 0.0164)], {'content': 0.2, 'caption': 0.9})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from services.config import takes_captions
from services.gateway.errors import BadRequest
from services.store.models import MAX_WINDOW, Hit

Part = Literal["content", "caption", "fused"]
#: The constant of reciprocal rank fusion: larger flattens the difference between top and lower ranks.
RRF_K = 60
#: Each part's search reads its first FUSION_DEPTH results (a multiple of it past that), whatever the page,
#: so the pages within them are slices of one fused ranking: no asset on two pages, none skipped.
FUSION_DEPTH = 50


@dataclass(frozen=True)
class Ranked:
    """A search's hits (best first, each asset once), which part answered, and for a fused search each
    hit's score in each part that ranked it (asset_id -> part -> cosine or hybrid score)."""

    hits: list[Hit]
    part: Part
    parts: dict[str, dict[str, float]] = field(default_factory=dict)


def fusion_depth(offset: int, limit: int, *, most: int = MAX_WINDOW) -> int:
    """How many results of each part a fused page at ``offset`` needs: offset + limit, rounded up to a
    multiple of FUSION_DEPTH (the same for every page within it), at most ``most``.

    >>> fusion_depth(0, 10), fusion_depth(40, 10), fusion_depth(45, 10), fusion_depth(9990, 10)
    (50, 50, 100, 10000)
    """
    return min(most, -(-(offset + limit) // FUSION_DEPTH) * FUSION_DEPTH)


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[Hit]], *, k: int = RRF_K) -> Ranked:
    """One ranking of assets from several (part -> hits, best first); a hit's score becomes its fused
    score. Ties keep the order of first appearance (the first ranking given first)."""
    fused: dict[str, float] = {}
    first: dict[str, Hit] = {}
    parts: dict[str, dict[str, float]] = {}
    for part, hits in rankings.items():
        for rank, hit in enumerate(hits, start=1):
            if part in parts.get(hit.asset_id, {}):
                continue  # an asset twice in one ranking counts at its best rank
            fused[hit.asset_id] = fused.get(hit.asset_id, 0.0) + 1.0 / (k + rank)
            first.setdefault(hit.asset_id, hit)
            parts.setdefault(hit.asset_id, {})[part] = hit.score
    order = sorted(fused, key=lambda a: -fused[a])  # stable: ties stay in order of first appearance
    return Ranked([replace(first[a], score=fused[a]) for a in order], "fused", {a: parts[a] for a in order})


def resolve_part(asked: Part | None, *, space: str, modalities: frozenset[str], target: str) -> Part:
    """The part a search reads: the one asked for, else ``fused`` where the space embeds captions and the
    target can carry one (image, audio or any), else ``content``. A 400 when the caption is asked of a space
    without captions or for texts (a text asset is its own content)."""
    can_have = takes_captions(modalities) and target != "text"
    if asked is None:
        return "fused" if can_have else "content"
    if asked != "content" and not can_have:
        why = "text assets have no captions" if target == "text" else f"space {space!r} embeds no captions"
        raise BadRequest(f"part {asked!r}: {why}; use part 'content' (or leave it out)",
                         details=[{"path": "body.part", "message": why}])
    return asked
