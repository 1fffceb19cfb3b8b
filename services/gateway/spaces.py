"""Which embedding space answers a search: the first configured space whose model embeds the query's
modality and holds the target's.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from services.gateway.errors import BadRequest


class HasModalities(Protocol):
    @property
    def space(self) -> str: ...

    @property
    def modalities(self) -> frozenset[str]: ...


S = TypeVar("S", bound=HasModalities)


def candidates(spaces: Sequence[S], query: str, target: str) -> list[S]:
    """The spaces that can answer ``query`` (a modality, or "asset") -> ``target``, in configured order."""
    return [s for s in spaces
            if (query == "asset" or query in s.modalities) and (target == "any" or target in s.modalities)]


def unanswerable(spaces: Sequence[HasModalities], query: str, target: str) -> BadRequest:
    have = "; ".join(f"{s.space} ({', '.join(sorted(s.modalities))})" for s in spaces) or "none"
    what = "an asset" if query == "asset" else f"an {query} query" if query[0] in "aeiou" else f"a {query} query"
    return BadRequest(f"no embedding space answers {what} with target {target}: the spaces are {have}. "
                      "Choose another target, or configure a space that has both (XMODAL_SPACES)",
                      code="no_space")
