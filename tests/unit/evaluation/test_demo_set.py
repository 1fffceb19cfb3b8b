"""The demo's labelled set judges its queries against the very catalogue `xmodal demo` publishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.evaluation.demo import demo_set
from services.evaluation.sets import LabelledSet, load_set, write_set
from services.samples import scenes_sample, shapes_sample, sounds_sample
from services.video_samples import clips_sample


@pytest.fixture(scope="module")
def labelled() -> LabelledSet:
    return demo_set()


def test_every_direction_has_queries_and_every_query_an_answer(labelled: LabelledSet) -> None:
    assert labelled.directions() == ["text->image", "image->text", "image->image", "text->audio", "audio->text",
                                     "audio->audio", "text->video", "image->video"]
    for q in labelled.queries:
        assert any(rel >= 1 for rel in labelled.qrels[q.qid].values()), q.qid
        assert q.request["target"] == q.target
    parts = {"-".join(q.qid.split("-")[:2]) for q in labelled.queries}
    assert {"t2i-shape", "t2i-scene", "t2i-filter", "i2t-scene", "i2i-shape"} <= parts


def test_judgements_name_assets_the_demo_publishes(labelled: LabelledSet) -> None:
    published = {e.asset_id: e for e in shapes_sample() + scenes_sample() + sounds_sample() + clips_sample()}
    for q in labelled.queries:
        for asset_id in labelled.qrels[q.qid]:
            assert asset_id in published, (q.qid, asset_id)
            modality = published[asset_id].modality
            assert modality is not None and modality.value == q.target


def test_filter_queries_need_their_filter(labelled: LabelledSet) -> None:
    published = {e.asset_id: e for e in shapes_sample() + scenes_sample()}
    filtered = [q for q in labelled.queries if q.qid.startswith("t2i-filter-")]
    assert filtered
    for q in filtered:
        color = q.request["filters"]["eq"]
        assert color not in q.request["text"]  # the colour is only in the filter
        for asset_id in labelled.qrels[q.qid]:
            assert published[asset_id].metadata["color"] == color


def test_query_pictures_are_not_in_the_index(labelled: LabelledSet) -> None:
    published = {e.data for e in shapes_sample() + scenes_sample() if e.data is not None}
    pictures = [q.request["image"]["data"] for q in labelled.queries if "image" in q.request]
    assert pictures and not published.intersection(pictures)


def test_the_set_exports_and_loads_back(labelled: LabelledSet, tmp_path: Path) -> None:
    write_set(labelled, tmp_path / "demo")
    again = load_set(tmp_path / "demo")
    assert [q.qid for q in again.queries] == [q.qid for q in labelled.queries]
    assert again.qrels == labelled.qrels


def test_video_queries_judge_the_clip_that_shows_it(labelled: LabelledSet) -> None:
    t2v = {q.qid: q for q in labelled.of_direction("text->video")}
    assert t2v["t2v-clip-circle-red-blue-after"].request["text"] == "a photo of a blue circle"
    assert labelled.qrels["t2v-clip-circle-red-blue-after"] == {"clip-circle-red-blue": 1}
    assert len(labelled.of_direction("image->video")) == len(t2v) == 12
