"""Property naming and typing rules of the collection, without a server."""

from __future__ import annotations

import itertools
import re

import pytest
from weaviate.classes.config import ReplicationDeletionStrategy

from services.store.schema import (
    BUILTIN_FIELDS,
    PropKind,
    SchemaView,
    base_properties,
    kind_of,
    meta_property,
    meta_property_config,
    replication_config,
    vector_config,
)

# Weaviate v1.39 (entities/schema/validation.go): the name pattern, and the suffixes it reserves.
WEAVIATE_PROPERTY = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,230}$")
RESERVED = ("_searchable", "_rangeable", "_temp", "__meta_count", "_propertyLength", "_nullState")


def test_lower_case_keys_keep_a_readable_name() -> None:
    assert meta_property("color") == "meta_color"
    assert meta_property("user_id") == "meta_user_id"
    assert meta_property("_private") == "meta__private"


@pytest.mark.parametrize("key", ["max_temp", "x_searchable", "a_rangeable", "Color", "userId", "a_nullState"])
def test_other_keys_get_valid_unreserved_names(key: str) -> None:
    name = meta_property(key)
    assert WEAVIATE_PROPERTY.match(name)
    assert not name.endswith(RESERVED)
    assert name.startswith("metax_")


def test_names_never_clash_even_case_insensitively() -> None:
    # Weaviate refuses a property whose lower-cased name is taken, so "Color" and "color" must differ
    # after lower-casing too; so must keys that only differ in underscores.
    alphabet = ["a", "A", "_", "b", "B", "1"]
    keys = ["".join(p) for n in (1, 2, 3) for p in itertools.product(alphabet, repeat=n) if p[0] != "1"]
    keys += ["max_temp", "max__temp", "Max_temp", "max_Temp", "x__meta_count", "color", "Color", "COLOR"]
    names = [meta_property(k).lower() for k in keys]
    assert len(set(names)) == len(keys)


def test_longest_key_still_fits() -> None:
    assert WEAVIATE_PROPERTY.match(meta_property("A" * 64))


def test_kinds_of_values() -> None:
    assert kind_of("x") is PropKind.TEXT
    assert kind_of(3) is PropKind.NUMBER
    assert kind_of(3.5) is PropKind.NUMBER
    assert kind_of(True) is PropKind.BOOL
    assert kind_of(["a", "b"]) is PropKind.TEXT_ARRAY
    assert kind_of([]) is PropKind.TEXT_ARRAY
    assert kind_of([1, 2]) is None
    assert kind_of({"a": 1}) is None
    assert kind_of(None) is None


def test_base_properties_cover_the_builtin_filter_fields() -> None:
    props = {p.name: p for p in base_properties()}
    assert set(BUILTIN_FIELDS) <= set(props)
    for name, kind in BUILTIN_FIELDS.items():
        assert props[name].dataType.value == kind.value
    assert props["text"].indexSearchable is True
    assert props["uri"].indexFilterable is False
    assert props["thumbnail"].dataType.value == "blob"


def test_meta_properties_are_filterable_and_not_bm25_searched() -> None:
    text = meta_property_config("meta_color", PropKind.TEXT)
    assert text.indexFilterable is True
    assert text.indexSearchable is False
    assert text.tokenization is not None
    assert text.tokenization.value == "field"
    assert meta_property_config("meta_price", PropKind.NUMBER).dataType.value == "number"


def test_vector_config_is_self_provided_hnsw_cosine() -> None:
    config = vector_config("clip")._to_dict()
    assert config["vectorizer"] == {"none": {}}
    assert config["vectorIndexType"] == "hnsw"
    assert config["vectorIndexConfig"]["distance"] == "cosine"


def test_field_kind_prefers_builtin_fields() -> None:
    view = SchemaView({"meta_modality": PropKind.NUMBER, "meta_size": PropKind.NUMBER}, frozenset())
    assert view.field_kind("modality") == ("modality", PropKind.TEXT)
    assert view.field_kind("size") == ("meta_size", PropKind.NUMBER)
    assert view.field_kind("missing") is None


def test_replication_is_left_to_the_server_for_one_copy() -> None:
    assert replication_config(1) is None  # the server's REPLICATION_MINIMUM_FACTOR then decides
    three = replication_config(3)
    assert three is not None and three.factor == 3
    # deletes then re-upserts of one asset are normal: a conflict goes to the newer of delete and write
    assert three.deletionStrategy is ReplicationDeletionStrategy.TIME_BASED_RESOLUTION
    assert SchemaView({}, frozenset()).replication_factor == 1
