"""The migration's pure parts: the filler's settings, the state record, progress figures, the CLI's output."""

from __future__ import annotations

from pathlib import Path

from cli.main import build_parser
from cli.migrate import render_plan, render_progress
from services.config import WorkerSettings
from services.migration.estimate import ModelProbe
from services.migration.steps import Plan, Progress, migration_group, worker_settings
from services.store.migrations import ACTIVE, MigrationState, next_collection

STATE = MigrationState(alias="Asset", space="clip", old_collection="Asset_v1", new_collection="Asset_v2",
                       old_model="builtin:shapes-clip", new_model="/models/clip-2", group_id="g-migrate-asset_v2",
                       started_at="2026-12-02T16:00:00+00:00", history=["2026-12-02T16:00:00+00:00 backfilling"])


def test_the_filler_is_the_worker_with_its_own_collection_group_model_and_data_dir(tmp_path: Path) -> None:
    live = WorkerSettings(data_dir=tmp_path / "data", weaviate={"collection": "Asset", "behind_alias": True})
    filler = worker_settings(live, STATE)
    assert filler.weaviate.collection == "Asset_v2" and not filler.weaviate.behind_alias
    assert filler.kafka.group_id == "g-migrate-asset_v2" and filler.kafka.topic == live.kafka.topic
    assert filler.spaces["clip"].name == "/models/clip-2"
    assert filler.spaces["clap"] == live.spaces["clap"]  # the other spaces keep their models
    assert filler.data_dir != live.data_dir and filler.data_dir.is_relative_to(live.data_dir)
    assert live.spaces["clip"].name == "builtin:shapes-clip" and live.weaviate.collection == "Asset"  # untouched


def test_each_migration_has_a_group_of_its_own_that_starts_from_offset_0() -> None:
    assert migration_group("xmodal-worker", "Asset_v2") == "xmodal-worker-migrate-asset_v2"
    assert migration_group("xmodal-worker", "Asset_v3") != migration_group("xmodal-worker", "Asset_v2")
    assert next_collection("Asset", "Asset_v2") == "Asset_v3"


def test_steps_keep_their_history_and_watermark() -> None:
    cut = STATE.stepped("cut_over", "t1", {0: 10, 1: 7})
    back = cut.stepped("rolled_back", "t2", {0: 12, 1: 7})
    assert [h.split()[1] for h in back.history] == ["backfilling", "cut_over", "rolled_back"]
    assert back.watermark == {0: 12, 1: 7} and cut.watermark == {0: 10, 1: 7} and STATE.watermark == {}
    assert MigrationState.from_json(back.to_json()) == back
    assert {"backfilling", "cut_over", "rolled_back"} == ACTIVE and "finished" not in ACTIVE


def test_progress_figures_and_their_rendering() -> None:
    p = Progress(STATE, "Asset_v1", done=300, total=1200, rate=150.0, members=1,
                 counts={"Asset_v1": 400, "Asset_v2": 120})
    assert p.left == 900 and p.eta_s == 6.0
    assert p.to_json()["new"] == {"collection": "Asset_v2", "model": "/models/clip-2", "objects": 120,
                                  "group": "g-migrate-asset_v2", "members": 1}
    text = render_progress(p)
    assert "done 300/1200 events (25.0%), rate 150.0 events/s, ETA 6 s" in text
    assert "serving Asset_v1 (old)" in text
    stalled = Progress(STATE, "Asset_v2", done=10, total=20, rate=0.0, members=0, counts={})
    assert stalled.eta_s is None and "ETA n/a (not progressing)" in render_progress(stalled)
    assert Progress(STATE, "Asset_v2", done=20, total=20, rate=None, members=1, counts={}).eta_s == 0.0


def test_a_plan_says_what_it_would_do_or_why_it_cannot() -> None:
    ok = Plan("Asset", "clip", "Asset_v1", "Asset_v2", "builtin:shapes-clip", "/m", 400, 1200)
    assert "ok" in render_plan(ok) and "replaying 1200 event(s)" in render_plan(ok)
    measured = render_plan(ok, ModelProbe("/m", 16, frozenset({"image", "text"}), per_s=100.0))
    assert "image+text, 16 dims, 100 inputs/s" in measured and "at least 12 s of embedding" in measured
    bad = Plan("Asset", "clip", None, "Asset_v2", "builtin:shapes-clip", "/m", None, 0, ["Asset is not an alias"])
    assert "cannot      Asset is not an alias" in render_plan(bad) and "(not an alias)" in render_plan(bad)


def test_the_command_line() -> None:
    parser = build_parser()
    args = parser.parse_args(["migrate", "start", "--space", "clip", "--model", "/m"])
    assert (args.action, args.space, args.model) == ("start", "clip", "/m")
    assert parser.parse_args(["migrate", "cutover", "--timeout", "30"]).timeout == 30.0
    assert parser.parse_args(["migrate", "finish", "--drop-old"]).drop_old
