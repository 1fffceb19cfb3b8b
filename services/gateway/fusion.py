"""Which of an asset's vectors a search reads (its ``part``), and fusing the content and caption rankings.

An image or audio asset may have two vectors in a space: its content's (``clip``) and its caption's
(``clip_caption``, the space's text tower on the caption). ``part`` picks one, or ``fused`` searches both
and merges the two rankings by reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009):

    score(asset) = sum over the parts of 1 / (k + rank / share), rank from 1, k = 60

Ranks are fused, not scores, because the two parts' cosines lie on different scales: in a CLIP-family
space a text query is much closer to a caption (text to text) than to any image (text to image), so a sum
or a minimum of raw similarities would let captions win every time. Each store ranking holds an asset
once (one object per asset), and the fused ranking is keyed by asset, so every asset comes back once.

``share`` puts both rankings on one population. Every asset has a content vector, but maybe only a few
have a caption, and a nearest-neighbour search ranks whatever there is: with one captioned asset in a
thousand, that one is first of the caption ranking for every query, and plain RRF (share 1) would lift
it to the top of every fused search. Its rank among captions, divided by the share of assets that have
a caption, estimates its rank among all assets; the share is estimated from the content ranking itself
(``caption_share``), so it costs no query and follows the filters. An asset a ranking does not hold (no
caption, or one past the depth read) counts as ranked just after that ranking's end, so an asset is not
ahead merely for being in both rankings. Where every asset has a caption the share is 1: reciprocal rank
fusion with a missing rank read as the one after the last.

What ranks cannot do: tell a caption that matches the query word for word from one that merely is the
best of a few. In a catalogue where few assets have captions a caption match alone lifts its asset only
a little in a fused search; ``part: caption`` searches the captions alone.

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
>>> [(x.asset_id, round(x.score, 4)) for x in f.hits], f.parts["y"]  # x: rank 1 and (at best) 2, y: 2 and 1
([('x', 0.0325), ('y', 0.0325)], {'content': 0.2, 'caption': 0.9})
>>> f = reciprocal_rank_fusion({"content": [h("x", 0.3), h("y", 0.2), h("z", 0.1)], "caption": [h("z", 0.9)]},
...                            shares={"caption": 0.1})  # captions are rare: rank 1 of them ~ rank 10
>>> [(x.asset_id, round(x.score, 4)) for x in f.hits]
[('z', 0.0302), ('x', 0.0289), ('y', 0.0286)]
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


def caption_share(content: Sequence[Hit]) -> float:
    """The share of assets that have a caption, estimated from a content ranking (which holds assets with and
    without one): (captioned + 1) / (n + 1), so a ranking without captions still gives a share above 0."""
    return (sum(h.caption is not None for h in content) + 1) / (len(content) + 1)


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[Hit]], *, k: int = RRF_K,
                           shares: Mapping[str, float] | None = None) -> Ranked:
    """One ranking of assets from several (part -> hits, best first); a hit's score becomes its fused
    score. ``shares``: part -> the share of assets that part's ranking draws from (default 1: all), which
    divides its ranks. Ties keep the order of first appearance (the first ranking given first)."""
    first: dict[str, Hit] = {}
    parts: dict[str, dict[str, float]] = {}  # asset -> part -> its score there
    terms: dict[str, dict[str, float]] = {}  # asset -> part -> its term of the fused score
    floors: dict[str, float] = {}  # part -> the term of an asset its ranking does not hold
    for part, hits in rankings.items():
        share = min(1.0, max((shares or {}).get(part, 1.0), 1e-6))
        for rank, hit in enumerate(hits, start=1):
            if part in parts.get(hit.asset_id, {}):
                continue  # an asset twice in one ranking counts at its best rank
            first.setdefault(hit.asset_id, hit)
            parts.setdefault(hit.asset_id, {})[part] = hit.score
            terms.setdefault(hit.asset_id, {})[part] = 1.0 / (k + rank / share)
        # Not in this ranking: ranked just after its end, as far as the ranking can tell; every asset so
        # gets a term from every part, and being in both rankings is no bonus in itself.
        floors[part] = 1.0 / (k + (len({h.asset_id for h in hits}) + 1) / share)
    fused = {a: sum(mine.get(p, floors[p]) for p in rankings) for a, mine in terms.items()}
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
