"""deploy/k8s: the KEDA ScaledObject against KEDA's documented fields, and what the manifests must agree on.

`make lint` validates the core objects (Deployments, Services, ConfigMap, PodDisruptionBudget) with
kubernetes-validate against the Kubernetes schemas. That tool knows no CRDs, so the ScaledObject is checked
here against keda_scaledobject.schema.json (written from KEDA's docs), and so are the cross-references no
schema sees: names, ports, selectors, settings and the partition count.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate.utils as kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from services.config import GatewaySettings, WorkerSettings
from tests.unit.test_compose import env_names

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
SCHEMA = json.loads((Path(__file__).parent / "keda_scaledobject.schema.json").read_text())

Manifest = dict[str, Any]


def load_manifests() -> list[Manifest]:
    docs: list[Manifest] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return load_manifests()


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def scaled(manifests: list[Manifest]) -> Manifest:
    return one(manifests, "ScaledObject")


@pytest.fixture(scope="module")
def configmap(manifests: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = one(manifests, "ConfigMap", "xmodal")["data"]
    return data


def deployment(manifests: list[Manifest], component: str) -> Manifest:
    return one(manifests, "Deployment", f"xmodal-{component}")


def container(dep: Manifest) -> dict[str, Any]:
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{dep['metadata']['name']}: one container expected"
    c: dict[str, Any] = containers[0]
    return c


def env_entries(dep: Manifest) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(dep).get("env", [])}


def pod_env(manifests: list[Manifest], dep: Manifest) -> dict[str, str]:
    """The environment a container starts with: its envFrom ConfigMaps, then its env. Values from the downward
    API and from Secrets get stand-ins: a pod name, a JSON list of API keys, the secret's key name."""
    env: dict[str, str] = {}
    for source in container(dep).get("envFrom", []):
        env.update(one(manifests, "ConfigMap", source["configMapRef"]["name"])["data"])
    for name, entry in env_entries(dep).items():
        if "value" in entry:
            env[name] = entry["value"]
        elif "fieldRef" in entry["valueFrom"]:
            env[name] = f"{dep['metadata']['name']}-5d9c8-x2x7q"
        elif name == "XMODAL_API_KEYS":
            env[name] = '["a-key"]'
        else:
            env[name] = entry["valueFrom"]["secretKeyRef"]["key"]
    return env


@pytest.fixture
def resolve(
    manifests: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, type[BaseSettings]], Any]:
    """The settings a component's pod runs with: defaults + ConfigMap + env, read by its settings class."""

    def settings(component: str, cls: type[BaseSettings]) -> Any:
        for var in [v for v in os.environ if v.startswith("XMODAL_")]:
            monkeypatch.delenv(var)
        for var, value in pod_env(manifests, deployment(manifests, component)).items():
            monkeypatch.setenv(var, value)
        return cls()

    return settings


# --- the ScaledObject against KEDA's documented fields ----------------------------------------------------


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_scaledobject_has_only_fields_keda_documents(scaled: Manifest) -> None:
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(scaled), key=str)
    assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    *parents, last = path.split(".")

    def mutate(doc: Manifest) -> None:
        node: Any = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[last] = value

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _set("spec.maxReplicas", 12),  # the HPA's name, not KEDA's
        _set("spec.scaleTargetRef.nam", "x"),
        _set("spec.triggers.0.metadata.lagTreshold", "5"),  # misspelt: KEDA would use its default, 10
        _set("spec.triggers.0.metadata.allowIdleConsumers", False),  # a bool: the CRD wants strings
        _set("spec.triggers.0.metadata.lagThreshold", 500),
        _set("spec.triggers.0.metadata.offsetResetPolicy", "smallest"),
        _set("spec.triggers.0.metadata.bootstrapServers", "kafka"),  # no port
        _set("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies.0.type", "Replicas"),
        _set("apiVersion", "keda.k8s.io/v1alpha1"),  # KEDA v1's group
    ],
    ids=["hpa-field", "target-typo", "metadata-typo", "bool", "int", "reset-policy", "no-port", "policy", "v1"],
)
def test_the_schema_rejects_what_keda_would_not_take(scaled: Manifest, mutate: Callable[[Manifest], None]) -> None:
    doc = copy.deepcopy(scaled)
    mutate(doc)
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(doc)


# --- the ScaledObject against the other manifests and the settings -----------------------------------------


def test_scaledobject_scales_the_worker_deployment(manifests: list[Manifest], scaled: Manifest) -> None:
    ref = scaled["spec"]["scaleTargetRef"]
    assert ref.get("apiVersion", "apps/v1") == "apps/v1" and ref.get("kind", "Deployment") == "Deployment"
    worker = deployment(manifests, "worker")
    assert ref["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"], "KEDA's HPA owns the worker count; `kubectl apply` would reset it"


def test_scaledobject_reads_the_lag_the_workers_make(
    scaled: Manifest, resolve: Callable[[str, type[BaseSettings]], Any]
) -> None:
    kafka = resolve("worker", WorkerSettings).kafka
    [trigger] = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["bootstrapServers"] == kafka.bootstrap_servers
    assert meta["consumerGroup"] == kafka.group_id
    assert meta["topic"] == kafka.topic, "without a topic KEDA sums the lag of every topic the group has read"
    # KEDA counts a partition without committed offsets the way the consumer will start reading it
    app = (ROOT / "streams" / "app.py").read_text()
    assert f'consumer_auto_offset_reset="{meta["offsetResetPolicy"]}"' in app


def test_replicas_stop_at_the_partition_count(
    scaled: Manifest, resolve: Callable[[str, type[BaseSettings]], Any]
) -> None:
    spec = scaled["spec"]
    partitions = resolve("worker", WorkerSettings).kafka.partitions
    assert spec["maxReplicaCount"] == partitions, "workers beyond the partition count sit idle"
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["triggers"][0]["metadata"].get("allowIdleConsumers", "false") == "false"


# --- settings: every XMODAL_ name is one a settings class reads --------------------------------------------


def is_setting(var: str, settings: type[BaseSettings]) -> bool:
    return any(fnmatch.fnmatchcase(var, p) for p in env_names(settings))


def test_configmap_keys_are_settings(configmap: dict[str, str]) -> None:
    assert configmap and all(k.startswith("XMODAL_") for k in configmap)
    unknown = {k for k in configmap if not (is_setting(k, WorkerSettings) or is_setting(k, GatewaySettings))}
    assert not unknown, f"the ConfigMap sets variables no settings field reads: {unknown}"


@pytest.mark.parametrize(("component", "settings"), [("worker", WorkerSettings), ("gateway", GatewaySettings)])
def test_container_env_is_read_by_its_settings(
    manifests: list[Manifest],
    resolve: Callable[[str, type[BaseSettings]], Any],
    component: str,
    settings: type[BaseSettings],
) -> None:
    env = [v for v in env_entries(deployment(manifests, component)) if v.startswith("XMODAL_")]
    unknown = {v for v in env if not is_setting(v, settings)}
    assert not unknown, f"{component} sets variables its settings do not read: {unknown}"
    resolve(component, settings)  # and their values validate


def test_names_in_comments_are_settings() -> None:
    text = "\n".join(p.read_text() for p in K8S.glob("*.yaml"))
    named = set(re.findall(r"\bXMODAL_[A-Z0-9_]*[A-Z0-9]\b", text))
    unknown = {v for v in named if not (is_setting(v, WorkerSettings) or is_setting(v, GatewaySettings))}
    assert not unknown, f"deploy/k8s names settings that do not exist: {unknown}"


# --- ports, probes, selectors ------------------------------------------------------------------------------


def port_number(c: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as the container's port number."""
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    if isinstance(port, str):
        assert port in ports, f"{c['name']} has no port named {port!r} (it has {sorted(ports)})"
        return ports[port]
    assert port in ports.values(), f"{c['name']} does not listen on {port}"
    return port


PROBES = {
    "worker": {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"},
    "gateway": {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"},
}


@pytest.mark.parametrize(("component", "settings"), [("worker", WorkerSettings), ("gateway", GatewaySettings)])
def test_probes_hit_the_port_the_settings_listen_on(
    manifests: list[Manifest],
    resolve: Callable[[str, type[BaseSettings]], Any],
    component: str,
    settings: type[BaseSettings],
) -> None:
    s = resolve(component, settings)
    host, port = (s.web_host, s.web_port) if component == "worker" else (s.host, s.port)
    assert host == "0.0.0.0", "bound to loopback, the kubelet's probes could not reach it"
    c = container(deployment(manifests, component))
    assert [p["containerPort"] for p in c["ports"]] == [port]
    for probe, path in PROBES[component].items():
        get = c[probe]["httpGet"]
        assert get["path"] == path, f"{component} {probe}"
        assert port_number(c, get["port"]) == port, f"{component} {probe}"


def test_the_worker_port_is_named_metrics(manifests: list[Manifest]) -> None:
    assert [p["name"] for p in container(deployment(manifests, "worker"))["ports"]] == ["metrics"]


def pod_labels(dep: Manifest) -> dict[str, str]:
    labels: dict[str, str] = dep["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("component", ["worker", "gateway"])
def test_services_select_their_pods_and_ports(manifests: list[Manifest], component: str) -> None:
    dep = deployment(manifests, component)
    assert dep["spec"]["selector"]["matchLabels"] == {
        k: v for k, v in pod_labels(dep).items() if k in dep["spec"]["selector"]["matchLabels"]
    }
    svc = one(manifests, "Service", f"xmodal-{component}")
    others = [d for d in manifests if d["kind"] == "Deployment" and d is not dep]
    assert selects(svc["spec"]["selector"], pod_labels(dep))
    assert not any(selects(svc["spec"]["selector"], pod_labels(o)) for o in others)
    for p in svc["spec"]["ports"]:
        assert port_number(container(dep), p["targetPort"]) == p["port"]


def test_the_pdb_covers_the_workers_only(manifests: list[Manifest]) -> None:
    pdb = one(manifests, "PodDisruptionBudget")["spec"]
    assert selects(pdb["selector"]["matchLabels"], pod_labels(deployment(manifests, "worker")))
    assert not selects(pdb["selector"]["matchLabels"], pod_labels(deployment(manifests, "gateway")))
    assert "minAvailable" not in pdb, "minAvailable 1 with one replica would block every node drain"


def test_the_status_page_reads_every_worker(
    manifests: list[Manifest], resolve: Callable[[str, type[BaseSettings]], Any]
) -> None:
    urls = resolve("gateway", GatewaySettings).worker_metrics_urls
    svc = one(manifests, "Service", "xmodal-worker")["spec"]
    assert svc["clusterIP"] == "None", "a headless Service resolves to every worker pod"
    assert svc["publishNotReadyAddresses"] is True, "a paused (unready) worker must stay on the status page"
    port = resolve("worker", WorkerSettings).web_port
    assert [(urlsplit(u).hostname, urlsplit(u).port, urlsplit(u).path) for u in urls] == [
        ("xmodal-worker", port, "/metrics")
    ]


# --- lifecycle, identity, secrets, resources ---------------------------------------------------------------


def gateway_shutdown_grace_s() -> float:
    tree = ast.parse((ROOT / "services" / "gateway" / "server.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SHUTDOWN_GRACE_S" for t in node.targets):
            return float(ast.literal_eval(node.value))
    raise AssertionError("services/gateway/server.py has no SHUTDOWN_GRACE_S")


def test_termination_grace_outlasts_the_shutdown_bounds(
    manifests: list[Manifest], resolve: Callable[[str, type[BaseSettings]], Any]
) -> None:
    worker_bound = resolve("worker", WorkerSettings).shutdown_timeout_s
    for component, bound in (("worker", worker_bound), ("gateway", gateway_shutdown_grace_s())):
        grace = deployment(manifests, component)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > bound, f"{component}: killed after {grace} s while its shutdown may take {bound} s"


def test_static_membership_uses_the_pod_name(manifests: list[Manifest]) -> None:
    entry = env_entries(deployment(manifests, "worker"))["XMODAL_GROUP_INSTANCE_ID"]
    assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "one id per pod, unique in the group"


def test_gateway_keys_come_from_a_secret_it_cannot_start_without(manifests: list[Manifest]) -> None:
    ref = env_entries(deployment(manifests, "gateway"))["XMODAL_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] and ref["key"]
    assert not ref.get("optional", False), "a gateway on 0.0.0.0 must not start without API keys"


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@pytest.mark.parametrize("component", ["worker", "gateway"])
def test_torch_threads_match_the_cpu_request(manifests: list[Manifest], component: str) -> None:
    c = container(deployment(manifests, component))
    threads = int(env_entries(deployment(manifests, component))["OMP_NUM_THREADS"]["value"])
    assert threads == max(1, int(cpu(c["resources"]["requests"]["cpu"])))


def under_a_mount(c: dict[str, Any], path: str) -> bool:
    return any(Path(path).is_relative_to(m["mountPath"]) for m in c.get("volumeMounts", []))


@pytest.mark.parametrize("component", ["worker", "gateway"])
def test_writable_paths_are_volumes(manifests: list[Manifest], component: str) -> None:
    dep = deployment(manifests, component)
    c = container(dep)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert {m["name"] for m in c["volumeMounts"]} <= volumes
    env = {name: e["value"] for name, e in env_entries(dep).items() if "value" in e}
    assert under_a_mount(c, "/tmp")
    assert under_a_mount(c, env["HF_HOME"]), f"{component}: HF_HOME is not on a volume"
    if component == "worker":  # Faust creates its data dir but not the parents
        assert under_a_mount(c, str(Path(env["XMODAL_DATA_DIR"]).parent)), f"{component}: data dir not on a volume"


def test_both_run_the_one_image(manifests: list[Manifest]) -> None:
    for component, command in (("worker", ["xmodal", "worker"]), ("gateway", ["xmodal", "gateway"])):
        c = container(deployment(manifests, component))
        assert c["image"] == "xmodal:latest" and c["command"] == command


# --- the set of files ----------------------------------------------------------------------------------------


def manifest_files() -> Iterator[str]:
    return (p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(manifest_files())


def test_make_lint_validates_every_file_kubernetes_validate_knows() -> None:
    """`make lint` runs kubernetes-validate on deploy/k8s/*.yaml less the files it has no schema for (a CRD,
    the kustomization), which would only warn there; those are the files checked here."""
    unknown = set()
    for path in sorted(K8S.glob("*.yaml")):
        for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
            try:
                kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                unknown.add((path.name, doc["kind"]))
    assert unknown == {("worker-scaledobject.yaml", "ScaledObject"), ("kustomization.yaml", "Kustomization")}
    lint = re.search(r"^lint:.*?(?=^\S)", (ROOT / "Makefile").read_text(), re.M | re.S)
    assert lint is not None
    excluded = re.search(r"kubernetes-validate .*\$\(filter-out ([^,]+),\$\(wildcard deploy/k8s/\*\.yaml\)\)", lint[0])
    assert excluded is not None, "make lint no longer runs kubernetes-validate on deploy/k8s"
    assert {p.removeprefix("%/") for p in excluded[1].split()} == {name for name, _ in unknown}
