"""The gateway's golden schedule, offline: the real app over a store that is never connected, so every golden
search answers what a search answers while Weaviate is down, and the schedule reports exactly that, in the
metrics and in /v1/status. Invalid golden files stop create_app."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.evaluation.golden import GoldenFileError
from services.gateway.golden import GOLDEN, GoldenSchedule
from tests.unit.gateway.conftest import ClientFactory
from tests.unit.gateway.test_gateway_status_page import idle_collector

GOLDEN_YAML = """
- name: unit red circles
  request: {text: a photo of a red circle, target: image, limit: 3}
  expect: {top_all: {k: 3, metadata: {color: red}}}
- name: unit own text
  request: {text: a photo of a green triangle, target: text}
  expect: {top1: text-green-triangle}
"""


@pytest.fixture
def golden_file(tmp_path: Path) -> Path:
    path = tmp_path / "golden.yaml"
    path.write_text(GOLDEN_YAML)
    return path


def sample(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


async def test_the_schedule_runs_in_the_background_and_reports_a_down_store(
    make_client: ClientFactory, golden_file: Path
) -> None:
    runs_before = sample("xmodal_golden_runs_total") or 0.0
    async with make_client(status=idle_collector(), golden_file=golden_file, golden_interval_s=0.05) as c:
        schedule = c.app[GOLDEN]
        assert isinstance(schedule, GoldenSchedule) and schedule.status()["running"]
        async with asyncio.timeout(30):
            await schedule.wait_runs(2)  # the first run at start, the next one interval later
        body = await (await c.get("/v1/status")).json()
    golden = body["golden"]
    assert golden["configured"] and golden["file"] == str(golden_file) and golden["queries"] == 2
    assert golden["interval_s"] == 0.05 and golden["ok"] is False and golden["runs"] >= 2
    last = golden["last"]
    assert last["passed"] == 0 and last["total"] == 2 and last["ratio"] == 0.0
    assert [f["name"] for f in last["failed"]] == ["unit red circles", "unit own text"]
    for failure in last["failed"]:  # the Searcher's own 503 error, as a reason
        assert failure["reason"].startswith("search failed: ") and "Weaviate" in failure["reason"], failure
    assert sample("xmodal_golden_pass_ratio") == 0.0
    assert sample("xmodal_golden_query_ok", name="unit red circles") == 0.0
    assert sample("xmodal_golden_query_ok", name="unit own text") == 0.0
    assert (sample("xmodal_golden_runs_total") or 0.0) >= runs_before + 2
    assert (sample("xmodal_golden_last_run_timestamp") or 0.0) == pytest.approx(last["checked_at"])
    assert not schedule.status()["running"]  # stopped with the app


async def test_without_a_golden_file_the_section_says_how_to_configure_one(make_client: ClientFactory) -> None:
    async with make_client(status=idle_collector()) as c:
        assert c.app.get(GOLDEN) is None
        golden = (await (await c.get("/v1/status")).json())["golden"]
    assert golden["configured"] is False
    assert "XMODAL_GOLDEN_FILE" in golden["hint"] and "golden_demo.yaml" in golden["hint"]


@pytest.mark.parametrize(("yaml_text", "wanted"), [
    ("- name: typo\n  request: {text: x}\n  expect: {top_1: a}", r"entry 1 \('typo'\): unknown key 'expect.top_1'"),
    ("- name: too many\n  request: {text: x, limit: 1000}\n  expect: {top1: a}",
     r"entry 1 \('too many'\): the request is not a valid /v1/search body: body.limit: "),
    ("- name: two queries\n  request: {text: x, asset_id: y}\n  expect: {top1: a}",
     r"entry 1 \('two queries'\): the request is not a valid /v1/search body: .*exactly one of"),
    ("- name: quoted number\n  request: {text: x, limit: '3'}\n  expect: {top1: a}",
     r"the request is not a valid /v1/search body: body.limit: Input should be a valid integer"),
])
async def test_an_unusable_golden_file_stops_the_start(
    make_client: ClientFactory, tmp_path: Path, yaml_text: str, wanted: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(GoldenFileError, match=wanted):
        async with make_client(golden_file=path):
            pass
