"""The pipeline's decisions as types: what a batch does to each asset, what it dead-letters, what it did.

Preparing a batch turns every asset that has events in it into at most one plan:

- :class:`Upsert`: write this object (its vector computed by the model, or reused when only metadata changed);
- :class:`Delete`: remove the asset;
- :class:`Poisoned`: the model failed on the content, also alone; the event is dead-lettered and the stored
  state stays as it is;
- no plan at all: every event of the asset was stale or dead-lettered, so the stored state stays.

While the content is loaded but the model has not run yet, an upsert is :class:`Embeddable`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from schemas.dead_letter import DeadLetter, Reason
from services.config import caption_space
from services.ingest.content import Content
from services.ingest.records import Parsed, Record
from services.store import StoredState, format_model_ids, parse_model_ids


class Outcome(StrEnum):
    """What happened to one event; the ``outcome`` label of ``xmodal_events_total``."""

    stored = "stored"  # written with a vector the model computed
    metadata_only = "metadata_only"  # written with the stored vector: same content, same model
    deleted = "deleted"
    stale = "stale"  # older (event_time) than the state it met: ignored
    superseded = "superseded"  # applied, then overwritten by a later event of the same batch
    dead_letter = "dead_letter"


@dataclass(frozen=True)
class Letter:
    """A record to dead-letter, with the reason and how many times it was tried before giving up."""

    record: Record
    reason: Reason
    error: str
    attempts: int = 1  # 1: refused on sight; 2: poison (the model failed on it in its batch, then alone)


@dataclass(frozen=True)
class Embeddable:
    """An upsert whose content is loaded and decoded; the model of each space in ``todo`` has not run on the
    content yet, nor the text tower of each space in ``caption_todo`` on its caption.

    ``reused`` holds the stored vectors that stay valid, by named vector: a space's own (same content, same
    model) and its caption vector (same caption, same model).
    """

    parsed: Parsed
    content: Content
    state: StoredState | None  # what the store held before this batch (or a batch not yet committed)
    todo: tuple[str, ...]  # spaces whose model must run on the content
    reused: dict[str, list[float]] = field(default_factory=dict)
    caption_todo: tuple[str, ...] = ()  # spaces whose text tower must run on the caption


@dataclass(frozen=True)
class Upsert:
    """An object to write, with a vector in every space that accepts its modality.

    ``vectors`` also keeps other spaces' stored vectors while what they embed is unchanged (a write replaces
    the whole object, so dropping them would lose another model's work): content vectors while the content is
    the same, caption vectors while the caption is. ``model_ids`` says which model made each named vector.
    """

    parsed: Parsed
    content: Content
    vectors: dict[str, list[float]]
    model_ids: dict[str, str]
    reused: bool  # no model ran: a metadata-only update
    segments: dict[str, list[list[float]]] = field(default_factory=dict)  # a video's: <space>_segments -> vectors

    @classmethod
    def of(cls, item: Embeddable, computed: dict[str, list[float]], models: dict[str, str], *,
           segments: dict[str, list[list[float]]] | None = None) -> Upsert:
        """``computed``: named vector -> the vector a model just made; ``models``: named vector -> model id;
        ``segments``: a video's segment vectors, one multi-vector per space (they replace all stored ones)."""
        vectors: dict[str, list[float]] = {}
        model_ids: dict[str, str] = {}
        state, content = item.state, item.content
        if state is not None:
            made_by = parse_model_ids(state.model_id, state.vectors)
            same_content = state.content_hash == content.content_hash
            same_caption = content.caption is not None and state.caption_hash == content.caption_hash
            for name, vector in state.vectors.items():
                unchanged = same_caption if caption_space(name) is not None else same_content
                if unchanged:
                    vectors[name] = vector
                    if name in made_by:
                        model_ids[name] = made_by[name]
        mine = {**item.reused, **computed}
        vectors.update(mine)
        segments = segments or {}
        model_ids.update({space: models[space] for space in [*mine, *segments]})
        return cls(item.parsed, item.content, vectors, model_ids, reused=not computed, segments=segments)

    def expected_state(self) -> StoredState:
        """The state this write leaves in the store (what a batch prepared meanwhile must read)."""
        ev = self.parsed.event
        return StoredState(asset_id=ev.asset_id, event_time=ev.event_time, content_hash=self.content.content_hash,
                           model_id=format_model_ids(self.model_ids), vectors=self.vectors,
                           caption_hash=self.content.caption_hash, segments=self.segments)


@dataclass(frozen=True)
class Delete:
    parsed: Parsed


@dataclass(frozen=True)
class Poisoned:
    """The model failed on this upsert's content even alone: dead-lettered; nothing is written."""

    parsed: Parsed
    error: str


Plan = Upsert | Delete | Poisoned


@dataclass
class BatchReport:
    """What happened to one micro-batch (for logs, metrics and tests)."""

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    embedded: Counter[str] = field(default_factory=Counter)  # modality -> inputs the model ran on

    def add(self, outcome: Outcome, n: int = 1) -> None:
        if n:
            self.outcomes[outcome] += n
