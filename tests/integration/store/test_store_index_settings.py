"""Per-space HNSW and compression settings against the real local Weaviate (one collection per test)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
import weaviate
from weaviate.collections.classes.config import CollectionConfig, RQConfig, SQConfig, VectorIndexConfigHNSW

from services.config import VectorIndexSettings, WeaviateSettings
from services.errors import ConfigError
from services.store import AssetObject, AssetStore, SearchQuery

pytestmark = pytest.mark.integration

Make = Callable[..., AssetObject]


def with_indexes(settings: WeaviateSettings, **indexes: VectorIndexSettings) -> WeaviateSettings:
    return settings.model_copy(update={"vector_index": indexes})


async def read_config(settings: WeaviateSettings) -> CollectionConfig:
    async with weaviate.use_async_with_custom(
        http_host=settings.host, http_port=settings.http_port, http_secure=False,
        grpc_host=settings.host, grpc_port=settings.grpc_port, grpc_secure=False,
    ) as client:
        return await client.collections.use(settings.collection).config.get()


async def compressed(settings: WeaviateSettings, timeout_s: float = 30.0) -> bool:
    """Whether the collection's shard reports a compressed vector index (compression runs in the background)."""
    async with weaviate.use_async_with_custom(
        http_host=settings.host, http_port=settings.http_port, http_secure=False,
        grpc_host=settings.host, grpc_port=settings.grpc_port, grpc_secure=False,
    ) as client:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            nodes = await client.cluster.nodes(settings.collection, output="verbose")
            shards = [s for n in nodes for s in n.shards if s.collection == settings.collection]
            if (shards and all(s.compressed for s in shards)) or asyncio.get_running_loop().time() > deadline:
                return bool(shards) and all(s.compressed for s in shards)
            await asyncio.sleep(0.2)


def hnsw(config: CollectionConfig, space: str) -> VectorIndexConfigHNSW:
    index = (config.vector_config or {})[space].vector_index_config
    assert isinstance(index, VectorIndexConfigHNSW)
    return index


async def test_created_with_the_settings_of_each_space(settings: WeaviateSettings, spaces: dict[str, int]) -> None:
    configured = with_indexes(
        settings,
        clip=VectorIndexSettings(ef=64, ef_construction=64, max_connections=16, compression="rq", rescore_limit=50),
        clap=VectorIndexSettings(compression="sq", training_limit=1000),
    )
    async with AssetStore(configured, spaces) as store:
        await store.ensure_collection()
        await store.ensure_collection()  # again: nothing to change
    config = await read_config(settings)
    clip, clap = hnsw(config, "clip"), hnsw(config, "clap")
    assert (clip.ef, clip.ef_construction, clip.max_connections) == (64, 64, 16)
    assert isinstance(clip.quantizer, RQConfig)
    assert (clip.quantizer.bits, clip.quantizer.rescore_limit) == (8, 50)
    assert isinstance(clap.quantizer, SQConfig) and clap.quantizer.training_limit == 1000
    assert (clap.ef, clap.max_connections) == (-1, 32)  # the defaults: Weaviate's own


async def test_ef_and_compression_change_in_place(
    store: AssetStore, settings: WeaviateSettings, spaces: dict[str, int], make_asset: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assets = [make_asset(f"sku-{i}", vectors={"clip": [1.0, i / 10, 0.0, 0.5]}) for i in range(20)]
    assert await store.write(assets, []) == {}
    assert hnsw(await read_config(settings), "clip").quantizer is None  # created with the defaults
    assert not await compressed(settings, timeout_s=0)

    changed = with_indexes(settings, clip=VectorIndexSettings(ef=150, compression="rq", rescore_limit=40))
    with caplog.at_level(logging.WARNING, logger="services.store.store"):
        async with AssetStore(changed, spaces) as restarted:
            await restarted.ensure_collection()
            hits = await restarted.search(SearchQuery(space="clip", vector=[1.0, 0.0, 0.0, 0.5], limit=3))
            assert await restarted.count() == 20  # nothing lost on the way
    clip = hnsw(await read_config(settings), "clip")
    assert clip.ef == 150
    assert isinstance(clip.quantizer, RQConfig) and clip.quantizer.rescore_limit == 40
    assert [h.asset_id for h in hits][:1] == ["sku-0"]
    assert await compressed(settings)  # the vectors already stored were compressed, not only the config changed
    assert "changing the vector index in place" in caplog.text
    assert "clip.compression: none in Weaviate, rq configured" in caplog.text

    # the rescore limit and ef go on changing in place while the compression stays
    tuned = with_indexes(settings, clip=VectorIndexSettings(ef=-1, compression="rq", rescore_limit=80))
    async with AssetStore(tuned, spaces) as again:
        await again.ensure_collection()
    clip = hnsw(await read_config(settings), "clip")
    assert clip.ef == -1 and isinstance(clip.quantizer, RQConfig) and clip.quantizer.rescore_limit == 80


@pytest.mark.parametrize(("wanted", "says"), [
    (VectorIndexSettings(max_connections=64), "clip.max_connections: 32 in Weaviate, 64 configured"),
    (VectorIndexSettings(ef_construction=256, ef=50), "clip.ef_construction: 128 in Weaviate, 256 configured"),
])
async def test_an_immutable_change_is_refused_and_nothing_changes(
    store: AssetStore, settings: WeaviateSettings, spaces: dict[str, int], wanted: VectorIndexSettings, says: str,
) -> None:
    async with AssetStore(with_indexes(settings, clip=wanted), spaces) as other:
        with pytest.raises(ConfigError, match="Weaviate cannot change these on an existing index") as raised:
            await other.ensure_collection()
    assert says in str(raised.value)
    assert "XMODAL_WEAVIATE__VECTOR_INDEX__CLIP__" in str(raised.value)
    clip = hnsw(await read_config(settings), "clip")
    assert (clip.ef, clip.ef_construction, clip.max_connections) == (-1, 128, 32)  # not even ef was changed


async def test_compression_once_on_cannot_be_switched_or_turned_off(
    settings: WeaviateSettings, spaces: dict[str, int],
) -> None:
    async with AssetStore(with_indexes(settings, clip=VectorIndexSettings(compression="rq")), spaces) as store:
        await store.ensure_collection()
    for wanted, says in [(VectorIndexSettings(), "clip.compression: rq in Weaviate, none configured"),
                         (VectorIndexSettings(compression="bq"), "clip.compression: rq in Weaviate, bq configured"),
                         (VectorIndexSettings(compression="rq", rq_bits=1), "clip.rq_bits: 8 in Weaviate, 1")]:
        async with AssetStore(with_indexes(settings, clip=wanted), spaces) as other:
            with pytest.raises(ConfigError, match=says):
                await other.ensure_collection()
    assert isinstance(hnsw(await read_config(settings), "clip").quantizer, RQConfig)
