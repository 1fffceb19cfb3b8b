"""deploy/: the Grafana dashboard is valid JSON whose every query selects series xmodal exports (with labels
they have), the datasource it names is the provisioned one, and Prometheus scrapes every worker replica."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from services.monitoring import metrics
from tests.unit.monitoring.promql import dashboard, exposed_series, exprs, grouping_labels, panels, selectors

DEPLOY = Path(__file__).parents[3] / "deploy"
#: labels Prometheus attaches to every scraped series
TARGET_LABELS = {"job", "instance"}


def declared_series() -> dict[str, set[str]]:
    """Series name -> label names of every metric in services.monitoring.metrics (worker and gateway)."""
    wrappers = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    families = [fam for m in wrappers for fam in m.describe()]
    labels = {fam.name: set(m._labelnames) for m in wrappers for fam in m.describe()}
    return exposed_series(families, labels)


def check_expr(expr: str, series: dict[str, set[str]]) -> list[str]:
    problems = []
    used = selectors(expr)
    if not used:
        problems.append("selects no series")
    for name, labels in used:
        if name not in series:
            problems.append(f"{name} is not exported")
        elif labels - series[name] - TARGET_LABELS:
            problems.append(f"{name} has no label {labels - series[name]}")
    known = set().union(*(series.get(n, set()) for n, _ in used)) | TARGET_LABELS
    if grouping_labels(expr) - known:
        problems.append(f"groups by unknown labels {grouping_labels(expr) - known}")
    return problems


def test_the_checker_catches_wrong_names_and_labels() -> None:
    series = declared_series()
    assert check_expr("sum(rate(xmodal_events_total[5m]))", series) == []
    assert check_expr("rate(xmodal_freshness_seconds[5m])", series)  # a histogram has no bare series
    assert check_expr("rate(xmodal_events[5m])", series)  # a counter is exposed as _total
    assert check_expr('xmodal_consumer_lag{route="x"}', series)
    assert check_expr("sum by (stage) (xmodal_consumer_lag)", series)
    assert check_expr("histogram_quantile(0.5, sum by (le) (rate(xmodal_freshness_seconds_bucket[1m])))",
                      series) == []


def test_every_query_selects_exported_series_with_real_labels() -> None:
    series = declared_series()
    problems = {(title, expr): p for title, expr in exprs(dashboard()) if (p := check_expr(expr, series))}
    assert not problems


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    used = {name for _, expr in exprs(dashboard()) for name, _ in selectors(expr)}
    for needed in ("xmodal_consumer_lag", "xmodal_freshness_seconds_bucket", "xmodal_events_total",
                   "xmodal_dead_letters_total", "xmodal_http_request_seconds_bucket", "xmodal_lag_drain_seconds",
                   "xmodal_stage_seconds_bucket", "xmodal_gpu_memory_bytes", "xmodal_query_queue_depth",
                   "xmodal_query_batch_size_count", "xmodal_query_queue_seconds_bucket",
                   "xmodal_query_inference_seconds_bucket", "xmodal_query_failures_total"):
        assert needed in used, needed


def test_panels_are_laid_out_without_overlap_and_use_the_provisioned_datasource() -> None:
    dash = dashboard()
    provisioned = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    cells: dict[tuple[int, int], str] = {}
    ids = set()
    for panel in panels(dash):
        assert panel["id"] not in ids
        ids.add(panel["id"])
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"])


def test_dashboard_provider_loads_the_mounted_folder() -> None:
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/xmodal.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    assert dashboard()["uid"] == "xmodal"


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    return data


def test_prometheus_discovers_worker_replicas_by_dns(prometheus: dict[str, Any]) -> None:
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    [sd] = jobs["worker"]["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["type"] == "A" and sd["port"] == 6066
    assert jobs["gateway"]["static_configs"][0]["targets"] == ["gateway:8000"]
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in jobs.values())
