"""docker-compose.yml wiring: services, the XMODAL_ variables the settings classes really read, ports, volumes."""

from __future__ import annotations

import fnmatch
import json
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from services.config import GatewaySettings, WorkerSettings

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads (prefix XMODAL_, nested with __), as fnmatch
    patterns: a dict of sections (the spaces) reads XMODAL_SPACES__<ANY NAME>__<FIELD>."""
    names: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            args = typing.get_args(ann)
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name.upper()}__")
            elif typing.get_origin(ann) is dict and isinstance(args[1], type) and issubclass(args[1], BaseModel):
                walk(args[1], f"{prefix}{name.upper()}__*__")
            names.add(f"{prefix}{name.upper()}")

    walk(settings, "XMODAL_")
    return names


def xmodal_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in service.get("environment", {}).items() if k.startswith("XMODAL_")}


def test_the_stack_is_all_there(compose: dict[str, Any]) -> None:
    assert {"kafka", "weaviate", "worker", "gateway", "topics"} <= set(compose["services"])


@pytest.mark.parametrize(("service", "settings"), [("worker", WorkerSettings), ("gateway", GatewaySettings)])
def test_every_variable_is_one_the_settings_read(
    compose: dict[str, Any], service: str, settings: type[BaseSettings]
) -> None:
    env = xmodal_env(compose["services"][service])
    assert env, f"{service} has no XMODAL_ settings"
    patterns = env_names(settings)
    unknown = {var for var in env if not any(fnmatch.fnmatchcase(var, p) for p in patterns)}
    assert not unknown, f"{service} sets variables no settings field reads: {unknown}"


def test_services_reach_kafka_and_weaviate_by_service_name(compose: dict[str, Any]) -> None:
    for name in ("worker", "gateway"):
        env = xmodal_env(compose["services"][name])
        assert env["XMODAL_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["XMODAL_WEAVIATE__HOST"] == "weaviate"
        deps = compose["services"][name]["depends_on"]
        assert deps["weaviate"]["condition"] == "service_healthy"
        assert deps["topics"]["condition"] == "service_completed_successfully"


def test_worker_scales(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "ports" not in worker, "a fixed host port would make `--scale worker=N` fail"
    assert "container_name" not in worker
    # one static member id shared by N replicas: the broker fences all but one of them
    assert "XMODAL_GROUP_INSTANCE_ID" not in xmodal_env(worker)
    partitions = int(xmodal_env(worker)["XMODAL_KAFKA__PARTITIONS"])
    topics_cmd = " ".join(compose["services"]["topics"]["command"])
    assert f"--partitions {partitions}" in topics_cmd, "workers beyond the partition count would idle"


def test_ports_match_the_defaults_and_bind_loopback(compose: dict[str, Any]) -> None:
    gw = GatewaySettings()
    ports = compose["services"]["gateway"]["ports"]
    assert f"127.0.0.1:{gw.port}:{gw.port}" in ports
    assert "127.0.0.1:9092:9092" in compose["services"]["kafka"]["ports"]
    assert "127.0.0.1:8080:8080" in compose["services"]["weaviate"]["ports"]


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    assert {"kafka-data", "weaviate-data", "models"} <= set(compose["volumes"])
    assert any("weaviate-data" in v for v in compose["services"]["weaviate"]["volumes"])
    assert any("kafka-data" in v for v in compose["services"]["kafka"]["volumes"])


def test_topic_names_match_the_settings(compose: dict[str, Any]) -> None:
    cmd = " ".join(compose["services"]["topics"]["command"])
    kafka = WorkerSettings().kafka
    assert f"--topic {kafka.topic} " in cmd and f"--topic {kafka.dlq_topic} " in cmd


REPO = COMPOSE.parent


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repo path of a service's ./ bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        src, dst, *_ = volume.split(":")
        if src.startswith("./"):
            out[dst] = src
    return out


def test_prometheus_and_grafana_run_beside_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"prometheus", "grafana"} <= set(services)
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    assert "127.0.0.1:3000:3000" in services["grafana"]["ports"]
    assert {"prometheus-data", "grafana-data"} <= set(compose["volumes"])


def test_monitoring_config_is_mounted_from_the_repo(compose: dict[str, Any]) -> None:
    prom = bind_mounts(compose["services"]["prometheus"])
    assert prom["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["services"]["prometheus"]["command"]
    graf = bind_mounts(compose["services"]["grafana"])
    assert graf["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    dashboards = graf["/etc/grafana/dashboards"]
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/xmodal.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO / dashboards / Path(home).name).is_file()
    for src in [*prom.values(), *graf.values()]:
        assert (REPO / src).exists(), src


def test_prometheus_scrapes_the_ports_the_services_listen_on(compose: dict[str, Any]) -> None:
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]
    jobs = {job["job_name"]: job for job in scrape}
    worker_env = xmodal_env(compose["services"]["worker"])
    assert jobs["worker"]["dns_sd_configs"][0]["port"] == int(worker_env["XMODAL_WEB_PORT"])
    assert jobs["worker"]["dns_sd_configs"][0]["names"] == ["worker"]  # the service name: every replica
    assert worker_env["XMODAL_WEB_HOST"] == "0.0.0.0"  # reachable from the prometheus container
    gateway_env = xmodal_env(compose["services"]["gateway"])
    assert jobs["gateway"]["static_configs"][0]["targets"] == [f"gateway:{gateway_env['XMODAL_PORT']}"]


def test_the_status_page_reads_every_worker_replica(compose: dict[str, Any]) -> None:
    env = xmodal_env(compose["services"]["gateway"])
    urls = json.loads(env["XMODAL_WORKER_METRICS_URLS"])
    port = xmodal_env(compose["services"]["worker"])["XMODAL_WEB_PORT"]
    assert urls == [f"http://worker:{port}/metrics"]


def test_the_worker_data_dir_can_be_created_in_the_image(compose: dict[str, Any]) -> None:
    # Faust makes its data dir without parents, and the Dockerfile's user (useradd -r) has no home directory:
    # the default under ~/.local/state would fail at start
    data_dir = Path(xmodal_env(compose["services"]["worker"])["XMODAL_DATA_DIR"])
    assert data_dir.parent == Path("/tmp")
