"""Per-space HNSW and compression settings: validation, what is created, what can change in place."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from weaviate.collections.classes.config_vector_index import VectorIndexConfigHNSWUpdate

from services.config import VectorIndexSettings, WeaviateSettings, WorkerSettings
from services.errors import ConfigError
from services.store import AssetStore
from services.store.schema import (
    IndexState,
    check_index_settings,
    fixed_changes_message,
    index_changes,
    index_update,
    vector_config,
)

#: the index Weaviate 1.39 makes when given no settings (what collections made before the settings have)
WEAVIATE_DEFAULT = IndexState("hnsw", ef=-1, ef_construction=128, max_connections=32, compression="none")


def test_defaults_are_weaviates_and_need_no_change() -> None:
    index = VectorIndexSettings()
    assert (index.ef, index.ef_construction, index.max_connections, index.compression) == (-1, 128, 32, "none")
    assert index_changes("clip", index, WEAVIATE_DEFAULT) == []


def test_settings_come_from_the_environment_per_space(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMODAL_WEAVIATE__VECTOR_INDEX__CLIP__COMPRESSION", "rq")
    monkeypatch.setenv("XMODAL_WEAVIATE__VECTOR_INDEX__CLIP__EF", "96")
    w = WorkerSettings()
    assert (w.weaviate.index_of("clip").compression, w.weaviate.index_of("clip").ef) == ("rq", 96)
    assert w.weaviate.index_of("clap") == VectorIndexSettings()  # a space not named: Weaviate's defaults
    assert w.weaviate.index_of("siglip") == VectorIndexSettings()


@pytest.mark.parametrize(("fields", "says"), [
    ({"compression": "zstd"}, "compression"),
    ({"ef": 0}, "ef must be -1"),
    ({"ef": -2}, "ef"),
    ({"max_connections": 3}, "max_connections"),
    ({"max_connections": 4096}, "max_connections"),
    ({"ef_construction": 2}, "ef_construction"),
    ({"compression": "rq", "rq_bits": 2}, "rq_bits"),
    ({"compression": "sq", "rq_bits": 4}, "rq_bits applies to compression rq"),
    ({"rescore_limit": 50}, "rescore_limit applies to compression rq or sq"),
    ({"compression": "bq", "pq_segments": 64}, "pq_segments applies to compression pq"),
    ({"compression": "rq", "training_limit": 10}, "training_limit applies to compression pq or sq"),
    ({"compression": "pq", "pq_centroids": 512}, "pq_centroids"),
    ({"compresion": "rq"}, "compresion"),  # a misspelt knob is refused, not ignored
])
def test_bad_settings_are_refused_with_the_setting_named(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        VectorIndexSettings.model_validate(fields)


def test_pq_segments_must_divide_the_dimension() -> None:
    check_index_settings("clip", VectorIndexSettings(compression="pq", pq_segments=128), 512)
    with pytest.raises(ConfigError, match=r"pq_segments \(96\) must divide the dimension \(512\)"):
        check_index_settings("clip", VectorIndexSettings(compression="pq", pq_segments=96), 512)
    bad = WeaviateSettings(vector_index={"clip": VectorIndexSettings(compression="pq", pq_segments=3)})
    with pytest.raises(ConfigError, match="XMODAL_WEAVIATE__VECTOR_INDEX__CLIP__PQ_SEGMENTS"):
        AssetStore(bad, {"clip": 4})


@pytest.mark.parametrize(("index", "expected"), [
    (VectorIndexSettings(), {"skipDefaultQuantization": True}),  # none means none, whatever the server default
    (VectorIndexSettings(compression="rq"), {"rq": {"enabled": True, "bits": 8}}),
    (VectorIndexSettings(compression="rq", rq_bits=1, rescore_limit=300),
     {"rq": {"enabled": True, "bits": 1, "rescoreLimit": 300}}),
    (VectorIndexSettings(compression="sq", training_limit=5000),
     {"sq": {"enabled": True, "trainingLimit": 5000}}),
    (VectorIndexSettings(compression="bq"), {"bq": {"enabled": True}}),
    (VectorIndexSettings(compression="pq", pq_segments=64),
     {"pq": {"enabled": True, "segments": 64, "centroids": 256, "trainingLimit": 100000, "encoder": {}}}),
])
def test_created_vector_carries_the_settings(index: VectorIndexSettings, expected: dict[str, object]) -> None:
    config = vector_config("clip", index.model_copy(update={"ef": 80, "max_connections": 16}))._to_dict()
    body = config["vectorIndexConfig"]
    assert (body["distance"], body["ef"], body["efConstruction"], body["maxConnections"]) == ("cosine", 80, 128, 16)
    assert {k: v for k, v in body.items() if k in {"skipDefaultQuantization", "rq", "sq", "pq", "bq"}} == expected


def test_ef_and_turning_compression_on_change_in_place() -> None:
    wanted = VectorIndexSettings(ef=200, compression="rq")
    changes = index_changes("clip", wanted, WEAVIATE_DEFAULT)
    assert [(c.setting, c.current, c.wanted, c.in_place) for c in changes] == [
        ("ef", -1, 200, True), ("compression", "none", "rq", True),
    ]
    update = index_update("clip", wanted)
    assert update.name == "clip"
    assert isinstance(update.vectorIndexConfig, VectorIndexConfigHNSWUpdate)
    assert update.vectorIndexConfig.ef == 200
    quantizer = update.vectorIndexConfig.quantizer
    assert quantizer is not None and quantizer.quantizer_name() == "rq"
    rescored = IndexState("hnsw", compression="sq", rescore_limit=20)
    more = index_changes("clip", VectorIndexSettings(compression="sq", rescore_limit=100), rescored)
    assert [(c.setting, c.in_place) for c in more] == [("rescore_limit", True)]


@pytest.mark.parametrize(("current", "wanted", "setting"), [
    (WEAVIATE_DEFAULT, VectorIndexSettings(max_connections=64), "max_connections"),
    (WEAVIATE_DEFAULT, VectorIndexSettings(ef_construction=256), "ef_construction"),
    (IndexState("hnsw", compression="rq", rq_bits=8), VectorIndexSettings(), "compression"),  # off
    (IndexState("hnsw", compression="rq", rq_bits=8), VectorIndexSettings(compression="sq"), "compression"),
    (IndexState("hnsw", compression="rq", rq_bits=8), VectorIndexSettings(compression="rq", rq_bits=1), "rq_bits"),
    (IndexState("hnsw", compression="pq", pq_segments=128, pq_centroids=256),
     VectorIndexSettings(compression="pq", pq_segments=64), "pq_segments"),
    (IndexState("flat"), VectorIndexSettings(), "index type"),
])
def test_what_weaviate_cannot_change_in_place(current: IndexState, wanted: VectorIndexSettings, setting: str) -> None:
    changes = index_changes("clip", wanted, current)
    assert [c.setting for c in changes if not c.in_place] == [setting]


def test_pq_segments_left_to_weaviate_accept_what_it_picked() -> None:
    trained = IndexState("hnsw", compression="pq", pq_segments=128, pq_centroids=256)
    assert index_changes("clip", VectorIndexSettings(compression="pq"), trained) == []


def test_the_refusal_says_what_differs_and_what_to_do() -> None:
    changes = index_changes("clip", VectorIndexSettings(max_connections=64), WEAVIATE_DEFAULT)
    message = fixed_changes_message("Asset", changes)
    assert "clip.max_connections: 32 in Weaviate, 64 configured" in message
    assert "XMODAL_WEAVIATE__VECTOR_INDEX__CLIP__MAX_CONNECTIONS" in message
    assert "new collection" in message and "XMODAL_WEAVIATE__COLLECTION" in message
