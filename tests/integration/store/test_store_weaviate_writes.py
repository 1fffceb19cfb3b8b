"""AssetStore writes and reads against the real local Weaviate (one collection per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import weaviate

from services.config import WeaviateSettings
from services.store import (
    ASSET_NAMESPACE,
    AssetObject,
    AssetStore,
    InvalidQuery,
    MetadataTypeConflict,
    SearchQuery,
    StoreUnavailable,
    WriteRejected,
    parse_filter,
)

pytestmark = pytest.mark.integration

Make = Callable[..., AssetObject]


async def test_collection_layout_and_uuid5_ids(
    store: AssetStore, settings: WeaviateSettings, make_asset: Make
) -> None:
    await store.ensure_collection()  # again: idempotent
    assert await store.ready()
    await store.write([make_asset("sku-7")], [])
    async with weaviate.use_async_with_custom(
        http_host=settings.host, http_port=settings.http_port, http_secure=False,
        grpc_host=settings.host, grpc_port=settings.grpc_port, grpc_secure=False,
    ) as client:
        collection = client.collections.use(settings.collection)
        config = await collection.config.get()
        # what a producer in another language computes: uuid5(ASSET_NAMESPACE, asset_id)
        obj = await collection.query.fetch_object_by_id(uuid.uuid5(ASSET_NAMESPACE, "sku-7"))
    assert obj is not None
    assert obj.properties["asset_id"] == "sku-7"
    assert set(config.vector_config or {}) == {"clip", "clap"}
    named = (config.vector_config or {})["clip"].to_dict()
    assert named["vectorizer"]["vectorizer"] == "none"  # self-provided
    assert named["vectorIndexType"] == "hnsw"
    assert named["vectorIndexConfig"]["distanceMetric"] == "cosine"
    props = {p.name: p.data_type.value for p in config.properties}
    assert props["event_time"] == "date"
    assert props["thumbnail"] == "blob"


async def test_two_workers_racing_to_create_both_succeed(
    settings: WeaviateSettings, spaces: dict[str, int]
) -> None:
    async with AssetStore(settings, spaces) as a, AssetStore(settings, spaces) as b:
        await asyncio.gather(a.ensure_collection(), b.ensure_collection())
        assert await a.ready()
        assert await b.ready()


async def test_upsert_then_read_back_everything(store: AssetStore, make_asset: Make) -> None:
    thumb = b"RIFF\x00\x00WEBPVP8 tiny"
    obj = make_asset(
        "sku-1", vectors={"clip": [0.1, 0.2, 0.3, 0.4], "clap": [1.0, 0.0, 0.0]}, thumbnail=thumb, offset=41,
        metadata={"color": "red", "price": 3, "tags": ["a", "b"], "sale": True, "Brand": "acme", "w": 2.5},
    )
    before = datetime.now(UTC)
    assert await store.write([obj], []) == {}
    after = datetime.now(UTC)
    got = await store.get("sku-1")
    assert got is not None
    assert got.metadata == obj.metadata
    assert isinstance(got.metadata["price"], int)  # the exact JSON value, not the float used for filters
    assert (got.modality, got.uri, got.text) == ("image", obj.uri, None)
    assert (got.content_hash, got.model_id) == ("hash-sku-1", "shapes-clip-v1")
    assert got.event_time == obj.event_time
    assert (got.source_partition, got.source_offset) == (1, 41)
    assert got.has_thumbnail
    assert got.spaces == ("clap", "clip")
    assert before <= got.indexed_at <= after  # set by the store at write time
    assert await store.thumbnail("sku-1") == thumb
    assert await store.vector_of("sku-1", "clip") == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert await store.vector_of("sku-1", "clap") == pytest.approx([1.0, 0.0, 0.0])
    assert await store.count() == 1


async def test_missing_assets_read_as_none(store: AssetStore, make_asset: Make) -> None:
    await store.write([make_asset("only-clip")], [])
    assert await store.get("nope") is None
    assert await store.thumbnail("nope") is None
    assert await store.thumbnail("only-clip") is None
    assert await store.vector_of("nope", "clip") is None
    assert await store.vector_of("only-clip", "clap") is None
    with pytest.raises(InvalidQuery, match="unknown vector space 'siglip'"):
        await store.vector_of("only-clip", "siglip")


async def test_states_report_what_is_stored(store: AssetStore, make_asset: Make) -> None:
    await store.write([make_asset("a", minutes=1), make_asset("b", minutes=2)], [])
    states = await store.states(["a", "b", "missing", "a"])
    assert set(states) == {"a", "b"}
    assert states["b"].event_time == make_asset("b", minutes=2).event_time
    assert (states["a"].content_hash, states["a"].model_id) == ("hash-a", "shapes-clip-v1")
    assert states["a"].vectors == {}
    with_vectors = await store.states(["a"], with_vectors=True)
    assert with_vectors["a"].vectors == {"clip": pytest.approx([1.0, 0.0, 0.0, 0.0])}


async def test_event_time_round_trips_exactly(store: AssetStore, make_asset: Make) -> None:
    # The worker drops events older than what is stored, so the stored time must not be rounded.
    when = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    await store.write([replace(make_asset("precise"), event_time=when)], [])
    stored = (await store.states(["precise"]))["precise"].event_time
    assert stored == when
    assert stored.microsecond == 123456


async def test_upsert_replaces_the_object(store: AssetStore, make_asset: Make) -> None:
    await store.write([make_asset("x", metadata={"color": "red", "size": 1}, thumbnail=b"t")], [])
    await store.write([make_asset("x", metadata={"color": "blue"}, minutes=5)], [])
    got = await store.get("x")
    assert got is not None
    assert got.metadata == {"color": "blue"}
    assert not got.has_thumbnail
    assert got.event_time == make_asset("x", minutes=5).event_time
    assert await store.count() == 1  # same uuid5: replaced, not duplicated
    for stale in ({"field": "color", "eq": "red"}, {"field": "size", "gte": 0}):
        q = SearchQuery(vector=[1, 0, 0, 0], space="clip", filters=parse_filter(stale))
        assert await store.search(q) == []


async def test_delete_removes_only_the_named_assets(store: AssetStore, make_asset: Make) -> None:
    await store.write([make_asset("keep"), make_asset("drop")], [])
    assert await store.write([], ["drop", "never-existed"]) == {}
    assert await store.get("drop") is None
    assert await store.get("keep") is not None
    assert await store.count() == 1


async def test_metadata_type_conflict_fails_only_that_object(store: AssetStore, make_asset: Make) -> None:
    await store.write([make_asset("first", metadata={"size": 3})], [])
    batch = [
        make_asset("ok-1", metadata={"size": 3.5}),  # int then float: both are numbers, no conflict
        make_asset("bad", metadata={"size": "L"}),
        make_asset("ok-2", metadata={"size": 4, "new_key": "x"}),
    ]
    failures = await store.write(batch, [])
    assert set(failures) == {"bad"}
    assert isinstance(failures["bad"], MetadataTypeConflict)
    assert not failures["bad"].retriable
    assert "holds number values" in str(failures["bad"])
    assert await store.get("bad") is None
    assert await store.get("ok-1") is not None
    assert await store.count() == 3


async def test_conflicting_types_in_one_new_batch_first_wins(store: AssetStore, make_asset: Make) -> None:
    batch = [make_asset("a", metadata={"k": True}), make_asset("b", metadata={"k": 1})]
    failures = await store.write(batch, [])
    assert set(failures) == {"b"}
    assert isinstance(failures["b"], MetadataTypeConflict)


async def test_weaviate_rejection_is_a_permanent_per_object_error(
    store: AssetStore, settings: WeaviateSettings, make_asset: Make
) -> None:
    await store.write([make_asset("four-dims")], [])  # the clip index now holds 4-dim vectors
    # A second worker configured with the wrong dimension: its own checks pass, Weaviate refuses.
    async with AssetStore(settings, {"clip": 3, "clap": 3}) as wrong:
        failures = await wrong.write([
            make_asset("bad", vectors={"clip": [1.0, 0.0, 0.0]}),
            make_asset("fine", vectors={"clap": [0.0, 1.0, 0.0]}),
        ], [])
        assert set(failures) == {"bad"}
        assert isinstance(failures["bad"], WriteRejected)
        assert "dimensions" in str(failures["bad"])
        # every object of a batch failing: the client hides which error is whose; the store finds out
        failures = await wrong.write([
            make_asset("bad-1", vectors={"clip": [1.0, 0.0, 0.0]}),
            make_asset("bad-2", vectors={"clip": [0.0, 1.0, 0.0]}),
        ], [])
        assert set(failures) == {"bad-1", "bad-2"}
        assert all(not f.retriable for f in failures.values())
    assert await store.get("fine") is not None
    assert await store.get("bad") is None


async def test_checks_before_sending_reject_bad_objects(store: AssetStore, make_asset: Make) -> None:
    failures = await store.write([
        make_asset("short", vectors={"clip": [1.0, 0.0]}),
        make_asset("space", vectors={"siglip": [1.0]}),
        make_asset("ok"),
    ], [])
    assert set(failures) == {"short", "space"}
    assert await store.count() == 1


async def test_concurrent_writers_add_the_same_new_key(
    settings: WeaviateSettings, spaces: dict[str, int], store: AssetStore, make_asset: Make
) -> None:
    other = AssetStore(settings, spaces)
    async with other:
        results = await asyncio.gather(
            store.write([make_asset("a", metadata={"fresh": "x"})], []),
            other.write([make_asset("b", metadata={"fresh": "y"})], []),
        )
        assert list(results) == [{}, {}]
        # same key, different types at once: one type wins, the other writer's asset is refused
        results = await asyncio.gather(
            store.write([make_asset("c", metadata={"newer": 1})], []),
            other.write([make_asset("d", metadata={"newer": "one"})], []),
        )
    failed = [f for r in results for f in r.values()]
    assert len(failed) == 1
    assert isinstance(failed[0], MetadataTypeConflict)
    assert await store.count() == 3


async def test_a_new_space_is_added_to_the_existing_collection(
    store: AssetStore, settings: WeaviateSettings, make_asset: Make
) -> None:
    await store.write([make_asset("old", vectors={"clip": [1.0, 0.0, 0.0, 0.0]})], [])
    async with AssetStore(settings, {"clip": 4, "clap": 3, "siglip": 2}) as upgraded:
        await upgraded.ensure_collection()
        await upgraded.ensure_collection()
        assert await upgraded.write([make_asset("new", vectors={"siglip": [0.6, 0.8]})], []) == {}
        hits = await upgraded.search(SearchQuery(vector=[0.6, 0.8], space="siglip"))
        assert [h.asset_id for h in hits] == ["new"]
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    old = await store.get("old")
    assert old is not None
    assert old.spaces == ("clip",)
    # the first store learns about the new space from Weaviate
    assert await store.vector_of("new", "siglip") == pytest.approx([0.6, 0.8])


async def test_caption_vectors_and_properties_are_added_to_an_existing_collection(
    store: AssetStore, settings: WeaviateSettings, make_asset: Make
) -> None:
    # a collection made before captions: the upgraded store adds clip_caption and the caption properties
    await store.write([make_asset("old")], [])
    async with AssetStore(settings, {"clip": 4, "clap": 3, "clip_caption": 4}) as upgraded:
        await upgraded.ensure_collection()
        captioned = replace(make_asset("new", vectors={"clip": [1.0, 0.0, 0.0, 0.0],
                                                       "clip_caption": [0.0, 1.0, 0.0, 0.0]}),
                            caption="a red circle", caption_hash="h-caption")
        assert await upgraded.write([captioned], []) == {}
        hits = await upgraded.search(SearchQuery(vector=[0.0, 1.0, 0.0, 0.0], space="clip_caption"))
        assert [(h.asset_id, h.caption) for h in hits] == [("new", "a red circle")]  # "old" has no caption vector
        states = await upgraded.states(["old", "new"], with_vectors=True)
        assert states["new"].caption_hash == "h-caption" and states["old"].caption_hash == ""
        assert set(states["new"].vectors) == {"clip", "clip_caption"} and set(states["old"].vectors) == {"clip"}
        new = await upgraded.get("new")
        assert new is not None and new.caption == "a red circle" and new.spaces == ("clip", "clip_caption")


async def test_an_outage_raises_retriable_errors(
    store: AssetStore, through_proxy: tuple[WeaviateSettings, Callable[[], Awaitable[None]]],
    spaces: dict[str, int], make_asset: Make,
) -> None:
    relayed, cut = through_proxy
    async with AssetStore(relayed, spaces) as cut_off:
        assert await cut_off.write([make_asset("before")], []) == {}
        await cut()
        with pytest.raises(StoreUnavailable) as info:
            await cut_off.write([make_asset("during")], [])
        assert info.value.retriable
        with pytest.raises(StoreUnavailable):
            await cut_off.search(SearchQuery(vector=[1, 0, 0, 0], space="clip"))
        assert not await cut_off.ready()
    assert await store.get("before") is not None
    assert await store.get("during") is None


async def test_start_fails_retriably_when_weaviate_is_unreachable(
    settings: WeaviateSettings, spaces: dict[str, int]
) -> None:
    nowhere = settings.model_copy(update={"http_port": 1, "grpc_port": 2, "timeout_s": 2.0})
    st = AssetStore(nowhere, spaces)
    with pytest.raises(StoreUnavailable):
        await st.start()
    assert not await st.ready()


async def test_a_space_turned_off_keeps_its_stored_vectors_on_update(
    store: AssetStore, settings: WeaviateSettings, make_asset: Make
) -> None:
    both = make_asset("sku-off", vectors={"clip": [1.0, 0.0, 0.0, 0.0], "clap": [0.0, 1.0, 0.0]})
    assert await store.write([both], []) == {}
    # A deployment that no longer configures clap updates the asset, carrying over what it read (as the
    # worker does for unchanged content): the clap vector is stored work, not an error.
    async with AssetStore(settings, {"clip": 4}) as clip_only:
        await clip_only.ensure_collection()
        updated = replace(both, metadata={"color": "red"})
        assert await clip_only.write([updated], []) == {}
        unknown = replace(both, vectors={**both.vectors, "siglip": [0.5]})
        refused = await clip_only.write([unknown], [])
        assert isinstance(refused["sku-off"], WriteRejected)
        assert "vector space 'siglip' is not configured" in str(refused["sku-off"])
    stored = await store.get("sku-off")
    assert stored is not None and stored.metadata == {"color": "red"}
    assert await store.vector_of("sku-off", "clap") == pytest.approx([0.0, 1.0, 0.0])
