"""Settings: defaults from the design, XMODAL_ variables nested with __, every field described."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

from services.config import (
    GatewaySettings,
    StackSettings,
    VectorIndexSettings,
    WeaviateSettings,
    WorkerSettings,
    enabled_spaces,
)


def test_defaults_follow_the_design() -> None:
    w, g, s = WorkerSettings(), GatewaySettings(), StackSettings()
    assert w.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert (w.kafka.topic, w.kafka.dlq_topic, w.weaviate.collection) == ("assets", "assets.dlq", "Asset")
    assert (w.weaviate.http_port, w.weaviate.grpc_port, w.web_port, g.port) == (8080, 50051, 6066, 8000)
    assert (s.kafka_port, s.kafka_controller_port) == (9092, 9093)
    assert g.host == "127.0.0.1" and w.web_host == "127.0.0.1"


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_KAFKA__BOOTSTRAP_SERVERS", "broker:19092")
    monkeypatch.setenv("XMODAL_SPACES__CLIP__NAME", "/models/clip")
    monkeypatch.setenv("XMODAL_BATCH__MAX_EVENTS", "64")
    monkeypatch.setenv("XMODAL_API_KEYS", '["k1", "k2"]')
    w, g, s = WorkerSettings(), GatewaySettings(), StackSettings()
    assert w.kafka.bootstrap_servers == g.kafka.bootstrap_servers == "broker:19092"
    assert s.kafka_port == 19092  # the local stack listens where the clients look
    assert w.spaces["clip"].name == "/models/clip" and w.batch.max_events == 64
    assert [k.get_secret_value() for k in g.api_keys] == ["k1", "k2"]
    assert "k1" not in repr(g)


@pytest.mark.parametrize("cls", [WorkerSettings, GatewaySettings, StackSettings])
def test_every_field_is_described(cls: type[BaseSettings]) -> None:
    def walk(model: type[BaseModel], path: str) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                missing += walk(ann, f"{path}{name}.")
            elif not field.description:
                missing.append(path + name)
        return missing

    assert walk(cls, "") == []


def test_spaces_are_defaults_with_the_given_fields_on_top(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_SPACES__CLIP__DEVICE", "cpu")
    monkeypatch.setenv("XMODAL_SPACES__SIGLIP__NAME", "/models/siglip")
    spaces = GatewaySettings().spaces
    assert spaces["clip"].name == "builtin:shapes-clip" and spaces["clip"].device == "cpu"  # default model kept
    assert spaces["siglip"].name == "/models/siglip" and spaces["siglip"].space == "siglip"  # a new space
    assert next(iter(spaces)) == "clip"  # configured order: the defaults first


def test_a_space_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_SPACES__CLIP__ENABLED", "false")
    monkeypatch.setenv("XMODAL_SPACES__OTHER__NAME", "/models/other")
    assert list(enabled_spaces(WorkerSettings().spaces)) == ["clap", "other"]


def test_weaviate_nodes_are_host_http_grpc_triples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_WEAVIATE__NODES", "127.0.0.1:8090:50061, 127.0.0.1:8100:50071")
    w = WorkerSettings().weaviate
    assert [str(e) for e in w.endpoints()] == ["127.0.0.1:8080:50051", "127.0.0.1:8090:50061", "127.0.0.1:8100:50071"]
    monkeypatch.setenv("XMODAL_WEAVIATE__NODES", '["127.0.0.1:8080:50051", "h2:1:2"]')  # JSON too; host once
    assert [str(e) for e in GatewaySettings().weaviate.endpoints()] == ["127.0.0.1:8080:50051", "h2:1:2"]
    monkeypatch.setenv("XMODAL_WEAVIATE__NODES", "h2:8090")
    with pytest.raises(ValueError, match="host:http_port:grpc_port"):
        WorkerSettings()


def test_consistency_defaults_give_read_your_writes() -> None:
    w = WorkerSettings().weaviate
    assert (w.nodes, w.replication_factor) == ([], 1)
    assert (w.write_consistency, w.read_consistency) == ("QUORUM", "QUORUM")  # 2 + 2 > 3 replicas


def test_cluster_nodes_get_strided_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_NODES", "3")
    s = StackSettings()
    assert s.nodes == 3
    assert [s.node_port(s.kafka_port, i) for i in (1, 2, 3)] == [9092, 9102, 9112]
    assert [s.node_port(s.weaviate.grpc_port, i) for i in (1, 2, 3)] == [50051, 50061, 50071]
    with pytest.raises(ValueError, match="raft_rpc_port = weaviate_raft_port \\+ 1"):
        StackSettings(weaviate_raft_rpc_port=8399)
    with pytest.raises(ValueError, match="ports overlap"):
        StackSettings(weaviate_data_port=7956)  # node 2's gossip port
    assert StackSettings(nodes=1, weaviate_raft_rpc_port=8399).nodes == 1  # one node: anything goes


def test_a_caption_vector_has_its_spaces_index_settings_unless_it_has_its_own() -> None:
    w = WeaviateSettings(vector_index={"clip": VectorIndexSettings(compression="rq"),
                                       "clap_caption": VectorIndexSettings(ef=64)})
    assert w.index_of("clip_caption").compression == "rq"
    assert w.index_of("clap_caption").ef == 64 and w.index_of("clap_caption").compression == "none"


def test_a_space_may_not_take_a_caption_vectors_name() -> None:
    with pytest.raises(ValidationError, match="caption vectors"):
        WorkerSettings(spaces={"clip_caption": {"name": "builtin:shapes-clip"}})


def test_a_space_may_not_take_a_video_segments_vectors_name() -> None:
    with pytest.raises(ValidationError, match="video-segment vectors"):
        WorkerSettings(spaces={"clip_segments": {"name": "builtin:shapes-clip"}})


def test_gateway_cpu_threads_default_to_a_quarter_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert GatewaySettings().cpu_threads == 4
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert GatewaySettings().cpu_threads == 1
    monkeypatch.setenv("XMODAL_TORCH_THREADS", "3")
    assert GatewaySettings().cpu_threads == 3
