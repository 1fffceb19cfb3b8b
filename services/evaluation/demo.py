"""The labelled set of the demo catalogue: what `xmodal eval` measures after `make demo`.

The demo publishes services.samples' shapes, scenes and sounds sets. This module rebuilds the same assets
(same generators, same seeds) with what each one truly shows, and judges every query against every asset
by that truth, never by a model:

- text -> image: the canonical caption of each single-shape class ("a photo of a red circle") and of each
  scene class ("a photo of a small filled red circle left of a large outlined blue star"); relevant: every
  picture the caption is true of (relevance 2 for the query's own class, 1 for any other picture it is
  true of, e.g. a scene that has a red circle in it). Plus queries whose answer needs a metadata filter:
  the colour as a filter, the shape in the text ("a photo of a circle" with ``color = red``).
- image -> text and image -> image: a fresh picture of each class (drawn anew, never published);
  relevant texts: its class's caption (2) and any other text true of it (1); relevant pictures: those of
  the same class.
- text -> audio, audio -> text, audio -> audio: the sounds' canonical captions and a fresh clip of each
  class; relevant: the clips (or the caption) of the same class.
- text -> video, image -> video: what each of the clips shows before and after its colour change, and a
  fresh frame of each side; relevant: the clip that shows it.

qids name the part they test (``t2i-shape-*``, ``t2i-scene-*``, ``t2i-filter-*``, ...), so a report can be
read by part as well as by direction.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterable

from services.embedding.shapes import scenes
from services.embedding.shapes.world import COLORS, SHAPES, canonical_caption, draw_image, split_rng
from services.evaluation.sets import EvalQuery, LabelledSet
from services.samples import (
    SCENE_CLASSES,
    SCENES_PER_CLASS,
    SEED,
    Entry,
    scenes_entries,
    shapes_entries,
    single,
    sounds_entries,
)

#: Seed of the query pictures and clips: never the catalogue's, so no query is an asset of the index.
QUERY_SEED = 7_331
FILTER_SHAPES = ("circle", "star", "square")
FILTER_COLORS = ("red", "blue", "yellow", "purple")


def _png(image: object) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")  # type: ignore[attr-defined]
    return base64.b64encode(buf.getvalue()).decode()


def _images(entries: Iterable[Entry]) -> list[Entry]:
    return [e for e in entries if e.event.modality is not None and e.event.modality.value == "image"]


def _texts(entries: Iterable[Entry]) -> list[Entry]:
    return [e for e in entries if e.event.modality is not None and e.event.modality.value == "text"]


def _metadata_is(key: str, value: str) -> Callable[[Entry], bool]:
    """What a filter ``key = value`` lets through (the metadata the demo publishes)."""

    def passes(e: Entry) -> bool:
        return e.event.metadata.get(key) == value

    return passes


def _t2i(qid: str, text: str, claim: scenes.Claim, own: str | None, pictures: list[Entry], *,
         filters: dict[str, object] | None = None,
         keep: Callable[[Entry], bool] | None = None) -> tuple[EvalQuery, dict[str, int]]:
    judged: dict[str, int] = {}
    for e in pictures:
        assert e.scene is not None
        if keep is not None and not keep(e):
            continue
        if claim.true_of(e.scene):
            judged[e.event.asset_id] = 2 if own is not None and e.scene.key == own else 1
    request: dict[str, object] = {"text": text, "target": "image"}
    if filters is not None:
        request["filters"] = filters
    return EvalQuery(qid, "text->image", request), judged


def demo_set(*, shapes_per_class: int = 4, scene_classes: int = SCENE_CLASSES,
             scenes_per_class: int = SCENES_PER_CLASS, sounds: bool = True, videos: bool = True) -> LabelledSet:
    """Queries and judgements for the catalogue `xmodal demo` publishes (sounds only when ``sounds``, the
    clips only when ``videos``)."""
    shapes = shapes_entries(shapes_per_class, seed=SEED)
    scene_set = scenes_entries(scene_classes, scenes_per_class, seed=SEED)
    pictures = _images(shapes) + _images(scene_set)
    texts = _texts(shapes) + _texts(scene_set)
    queries: list[EvalQuery] = []
    qrels: dict[str, dict[str, int]] = {}

    def add(query: EvalQuery, judged: dict[str, int]) -> None:
        if any(rel >= 1 for rel in judged.values()):  # a class with no picture in the index has no answer
            queries.append(query)
            qrels[query.qid] = judged

    # text -> image
    for color in COLORS:
        for shape in SHAPES:
            own = single(color, shape).key
            add(*_t2i(f"t2i-shape-{color}-{shape}", canonical_caption(color, shape),
                      scenes.Claim((scenes.Want(color, shape),)), own, pictures))
    classes = scenes.scene_classes(scene_classes, seed=SEED, split="val")
    for k, scene in enumerate(classes):
        add(*_t2i(f"t2i-scene-{k:03d}", scenes.canonical_caption(scene), scenes.full_claim(scene), scene.key,
                  pictures))
    for color in FILTER_COLORS:
        passes = _metadata_is("color", color)
        for shape in FILTER_SHAPES:
            add(*_t2i(f"t2i-filter-{color}-{shape}", f"a photo of a {shape}",
                      scenes.Claim((scenes.Want(color, shape),)), None, pictures,
                      filters={"field": "color", "eq": color}, keep=passes))

    # image -> text and image -> image: a fresh picture of every class
    rng = split_rng(QUERY_SEED, "val")
    fresh: list[tuple[str, scenes.Scene, str, object]] = []  # (qid part, scene, own text id, image)
    for color in COLORS:
        for shape in SHAPES:
            fresh.append((f"shape-{color}-{shape}", single(color, shape), f"text-{color}-{shape}",
                          draw_image(rng, color, shape)))
    for k, scene in enumerate(classes):
        drawn = scenes.Scene(scene.things, scene.relation, rng.choice(scenes.TEXTURES))
        fresh.append((f"scene-{k:03d}", scene, f"text-scene-{k:03d}", scenes.draw_scene(rng, drawn)))
    for part, scene, own_text, image in fresh:
        data = _png(image)
        to_text: dict[str, int] = {}
        for t in texts:
            assert t.claim is not None
            if t.event.asset_id == own_text:
                to_text[own_text] = 2
            elif t.claim.true_of(scene):
                to_text[t.event.asset_id] = 1
        add(EvalQuery(f"i2t-{part}", "image->text", {"image": {"data": data}, "target": "text"}), to_text)
        same = {e.event.asset_id: 1 for e in pictures if e.scene is not None and e.scene.key == scene.key}
        add(EvalQuery(f"i2i-{part}", "image->image", {"image": {"data": data}, "target": "image"}), same)

    if sounds:
        _sound_queries(add)
    if videos:
        _video_queries(add)
    return LabelledSet("demo", queries, qrels)


Add = Callable[[EvalQuery, dict[str, int]], None]


def _sound_queries(add: Add) -> None:
    import soundfile as sf  # type: ignore[import-untyped]

    from services.embedding.sounds import world

    library = sounds_entries(seed=SEED)
    clips = [e for e in library if e.event.modality is not None and e.event.modality.value == "audio"]
    captions = {e.sound: e.event.asset_id for e in library
                if e.event.modality is not None and e.event.modality.value == "text"}
    for sound in world.sounds():
        label = world.canonical_caption(sound)
        slug = label.replace(" ", "-")
        of_class = {e.event.asset_id: 1 for e in clips if e.sound == label}
        add(EvalQuery(f"t2a-{slug}", "text->audio", {"text": label, "target": "audio"}), of_class)
    for s in world.generate_balanced(1, seed=QUERY_SEED, split="val"):
        buf = io.BytesIO()
        sf.write(buf, s.audio, world.SAMPLING_RATE, format="WAV", subtype="PCM_16")
        data = base64.b64encode(buf.getvalue()).decode()
        slug = s.label.replace(" ", "-")
        add(EvalQuery(f"a2t-{slug}", "audio->text", {"audio": {"data": data}, "target": "text"}),
            {captions[s.label]: 1})
        add(EvalQuery(f"a2a-{slug}", "audio->audio", {"audio": {"data": data}, "target": "audio"}),
            {e.event.asset_id: 1 for e in clips if e.sound == s.label})


def _video_queries(add: Add) -> None:
    """text -> video: what each clip shows before and after its change ("a photo of a red circle", "... blue
    circle"); image -> video: a fresh frame of each clip (another seed) from either side of the change.
    Relevant: the clip showing it (the other clips never show that colour and shape: services.video_samples)."""
    from services.video_samples import CLIPS, FPS, frames

    for script in CLIPS:
        for side, t in (("before", 0.5), ("after", script.duration_s - 0.5)):
            caption = script.caption_at(t)
            shows = {c.asset_id: 1 for c in CLIPS if caption in (c.caption_at(0.0), c.caption_at(c.duration_s))}
            add(EvalQuery(f"t2v-{script.asset_id}-{side}", "text->video",
                          {"text": f"a photo of {caption}", "target": "video"}), shows)
            frame = frames(script, seed=QUERY_SEED)[round(t * FPS)]
            add(EvalQuery(f"i2v-{script.asset_id}-{side}", "image->video",
                          {"image": {"data": _png(frame)}, "target": "video"}), shows)
