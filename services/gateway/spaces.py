"""Which embedding space answers a search: the space the request names (``space``), else the one the
``directions`` setting names for the query's direction ("image->text": "clip_large"), else the first
configured space whose model embeds the query's modality and holds the target's.

A space is a model plus the modalities its towers accept (clip: image + text; clap: audio + text). Text ->
image is answered by clip, text -> audio and audio -> text by clap, image -> image by clip; ``target: any``
takes the first space that embeds the query. "More like this" (an ``asset_id`` query) searches a space in
which the asset has a vector. A query no space can answer is a 400 that lists the spaces there are.

>>> class Enc:
...     def __init__(self, space, modalities): self.space, self.modalities = space, frozenset(modalities)
>>> spaces = [Enc("clip", ["image", "text"]), Enc("clap", ["audio", "text"])]
>>> [candidates(spaces, q, t)[0].space for q, t in [("text", "image"), ("text", "audio"), ("audio", "any")]]
['clip', 'clap', 'clap']
>>> candidates(spaces, "image", "audio")
[]
>>> [s.space for s in candidates(spaces, "text", "video")]  # a video is searched by its keyframes or sound
['clip', 'clap']
>>> [s.space for s in candidates(spaces, "text", "any", directions={"text->any": "clap"})]
['clap', 'clip']
>>> [s.space for s in candidates(spaces, "text", "image", space="clap")]
[]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from services.config import takes_video
from services.errors import ConfigError
from services.gateway.errors import BadRequest


class HasModalities(Protocol):
    @property
    def space(self) -> str: ...

    @property
    def modalities(self) -> frozenset[str]: ...


S = TypeVar("S", bound=HasModalities)
TARGETS = ("text", "image", "audio", "video", "any")


def candidates(spaces: Sequence[S], query: str, target: str, *, space: str | None = None,
               directions: Mapping[str, str] | None = None) -> list[S]:
    """The spaces that can answer ``query`` (a modality, or "asset") -> ``target``: only ``space`` when one
    is named, else in configured order with the space ``directions`` names for this direction first."""
    able = [s for s in spaces
            if (query == "asset" or query in s.modalities) and (target == "any" or target in s.modalities
                                                                or (target == "video" and takes_video(s.modalities)))]
    if space is not None:
        return [s for s in able if s.space == space]
    preferred = (directions or {}).get(f"{query}->{target}")
    return sorted(able, key=lambda s: s.space != preferred)


def check_directions(spaces: Sequence[HasModalities], directions: Mapping[str, str]) -> None:
    """A ``directions`` setting must name known directions and spaces able to answer them (ConfigError)."""
    names = {s.space: s for s in spaces}
    for direction, name in directions.items():
        query, _, target = direction.partition("->")
        if not target or query not in ("text", "image", "audio") or target not in TARGETS:
            raise ConfigError(f"XMODAL_DIRECTIONS: {direction!r} is not a direction; write it as "
                              "QUERY->TARGET, e.g. image->text (query text, image or audio; target text, "
                              "image, audio, video or any)")
        if name not in names:
            raise ConfigError(f"XMODAL_DIRECTIONS: {direction} names space {name!r}, which is not "
                              f"configured; the spaces are {', '.join(names) or 'none'} (XMODAL_SPACES)")
        if not candidates([names[name]], query, target):
            takes = ", ".join(sorted(names[name].modalities))
            raise ConfigError(f"XMODAL_DIRECTIONS: space {name!r} ({takes}) cannot answer {direction}")


def unanswerable(spaces: Sequence[HasModalities], query: str, target: str, space: str | None = None) -> BadRequest:
    have = "; ".join(f"{s.space} ({', '.join(sorted(s.modalities))})" for s in spaces) or "none"
    what = "an asset" if query == "asset" else f"an {query} query" if query[0] in "aeiou" else f"a {query} query"
    if space is not None:
        known = any(s.space == space for s in spaces)
        why = "cannot answer it" if known else "is not configured"
        return BadRequest(f"space {space!r} {why}: {what} with target {target}. The spaces are {have}; leave "
                          "`space` out to let the gateway choose", code="no_space")
    return BadRequest(f"no embedding space answers {what} with target {target}: the spaces are {have}. "
                      "Choose another target, or configure a space that has both (XMODAL_SPACES)",
                      code="no_space")
