"""The store on a multi-tenant collection in the real Weaviate: tenant-scoped reads and writes, the tenancy
setting checked against the collection at start, and deleting one tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from services.config import WeaviateSettings
from services.errors import ConfigError
from services.store import AssetObject, AssetStore, SearchQuery, TenantMismatch, UnknownTenant

pytestmark = pytest.mark.integration

MakeAsset = Callable[..., AssetObject]


@pytest.fixture
def mt(settings: WeaviateSettings) -> WeaviateSettings:
    return settings.model_copy(update={"multi_tenancy": True})


@pytest.fixture
async def mt_store(mt: WeaviateSettings, spaces: dict[str, int]) -> AsyncIterator[AssetStore]:
    async with AssetStore(mt, spaces) as st:
        await st.ensure_collection()
        yield st


async def test_the_same_id_in_two_tenants_is_two_objects(mt_store: AssetStore, make_asset: MakeAsset) -> None:
    await mt_store.write([make_asset("a", text="acme's", modality="text", thumbnail=b"\x89PNG\r\n\x1a\nA")], [],
                         tenant="acme")
    await mt_store.write([make_asset("a", text="globex's", modality="text")], [], tenant="globex")
    acme, globex = await mt_store.get("a", tenant="acme"), await mt_store.get("a", tenant="globex")
    assert acme is not None and acme.text == "acme's"
    assert globex is not None and globex.text == "globex's"
    assert await mt_store.thumbnail("a", tenant="acme") == b"\x89PNG\r\n\x1a\nA"
    assert await mt_store.thumbnail("a", tenant="globex") is None
    states = await mt_store.states(["a"], tenant="globex")
    assert states["a"].content_hash == "hash-a"
    assert sorted(await mt_store.tenants()) == ["acme", "globex"]  # created on first write
    await mt_store.write([], ["a"], tenant="acme")
    assert await mt_store.get("a", tenant="acme") is None
    assert await mt_store.get("a", tenant="globex") is not None


async def test_a_tenant_that_does_not_exist_reads_as_empty(mt_store: AssetStore, make_asset: MakeAsset) -> None:
    await mt_store.write([make_asset("a")], [], tenant="acme")
    assert await mt_store.get("a", tenant="nobody") is None
    assert await mt_store.thumbnail("a", tenant="nobody") is None
    assert await mt_store.vector_of("a", "clip", tenant="nobody") is None
    assert await mt_store.states(["a"], tenant="nobody") == {}
    assert await mt_store.count(tenant="nobody") == 0
    assert await mt_store.search(SearchQuery(vector=[1.0, 0, 0, 0], space="clip", tenant="nobody")) == []
    hits = await mt_store.search(SearchQuery(vector=[1.0, 0, 0, 0], space="clip", tenant="acme"))
    assert [h.asset_id for h in hits] == ["a"]
    await mt_store.write([], ["a"], tenant="nobody")  # deleting from a tenant that does not exist: nothing to do
    assert "nobody" not in await mt_store.tenants()


async def test_every_data_call_must_name_a_tenant_exactly_when_multi_tenant(
    mt_store: AssetStore, settings: WeaviateSettings, spaces: dict[str, int], make_asset: MakeAsset,
) -> None:
    with pytest.raises(TenantMismatch):
        await mt_store.get("a")
    with pytest.raises(TenantMismatch):
        await mt_store.write([make_asset("a")], [])
    async with AssetStore(settings, spaces) as single:  # configured single-tenant
        with pytest.raises(TenantMismatch):
            await single.get("a", tenant="acme")
        with pytest.raises(TenantMismatch):
            await single.search(SearchQuery(vector=[1.0, 0, 0, 0], space="clip", tenant="acme"))


async def test_a_setting_that_disagrees_with_the_collection_stops_the_start(
    settings: WeaviateSettings, mt: WeaviateSettings, spaces: dict[str, int],
) -> None:
    async with AssetStore(settings, spaces) as single:
        await single.ensure_collection()
    async with AssetStore(mt, spaces) as multi:
        with pytest.raises(ConfigError, match="single-tenant in Weaviate but XMODAL_WEAVIATE__MULTI_TENANCY=true"):
            await multi.ensure_collection()
        await multi.drop_collection()
        await multi.ensure_collection()
    async with AssetStore(settings, spaces) as single:
        with pytest.raises(ConfigError, match="multi-tenant in Weaviate but XMODAL_WEAVIATE__MULTI_TENANCY=false"):
            await single.ensure_collection()


async def test_without_auto_creation_only_added_tenants_take_writes(
    mt: WeaviateSettings, spaces: dict[str, int], make_asset: MakeAsset,
) -> None:
    manual = mt.model_copy(update={"auto_tenant_creation": False})
    async with AssetStore(manual, spaces) as st:
        await st.ensure_collection()
        failed = await st.write([make_asset("a")], [], tenant="acme")
        assert isinstance(failed["a"], UnknownTenant)
        assert await st.add_tenant("acme")
        assert not await st.add_tenant("acme")
        assert await st.write([make_asset("a")], [], tenant="acme") == {}
        assert await st.count(tenant="acme") == 1
    async with AssetStore(mt, spaces) as st:  # turned back on: changed in place at start
        await st.ensure_collection()
        assert await st.write([make_asset("b")], [], tenant="globex") == {}


async def test_deleting_a_tenant_removes_its_objects_and_nothing_else(
    mt_store: AssetStore, make_asset: MakeAsset,
) -> None:
    await mt_store.write([make_asset(f"x{i}") for i in range(5)], [], tenant="acme")
    await mt_store.write([make_asset(f"x{i}") for i in range(3)], [], tenant="globex")
    before = await mt_store.get("x0", tenant="globex")
    assert await mt_store.tenant_counts() == {"acme": 5, "globex": 3}
    assert await mt_store.delete_tenant("acme")
    assert not await mt_store.delete_tenant("acme")
    assert await mt_store.tenant_counts() == {"globex": 3}
    assert await mt_store.get("x0", tenant="acme") is None
    assert await mt_store.get("x0", tenant="globex") == before
