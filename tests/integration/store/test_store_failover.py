"""The store on several nodes: it starts on the first that answers and moves on when the one it uses goes away.

Two ways to the one local Weaviate stand for two nodes: a relay that the test cuts (the node that dies) and
the server itself. The cluster test (tests/integration/cluster) does the same with real nodes killed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from services.config import WeaviateEndpoint, WeaviateSettings
from services.store import AssetObject, AssetStore, SearchQuery, StoreUnavailable

pytestmark = pytest.mark.integration

Make = Callable[..., AssetObject]


def direct(settings: WeaviateSettings) -> WeaviateEndpoint:
    return WeaviateEndpoint(host=settings.host, http_port=settings.http_port, grpc_port=settings.grpc_port)


async def test_a_call_after_its_node_died_goes_to_the_next_node(
    store: AssetStore, settings: WeaviateSettings,
    through_proxy: tuple[WeaviateSettings, Callable[[], Awaitable[None]]], spaces: dict[str, int], make_asset: Make,
) -> None:
    relayed, cut = through_proxy
    # (no Weaviate coordinator behind the relay can outlive the client: the short write timeout is safe here)
    two_nodes = relayed.model_copy(update={"nodes": [direct(settings)], "cluster_write_timeout_s": 1.0})
    async with AssetStore(two_nodes, spaces) as st:
        assert await st.write([make_asset("before")], []) == {}
        await cut()
        with pytest.raises(StoreUnavailable) as info:  # the call that meets the dead node: retriable
            await st.write([make_asset("during")], [])
        assert info.value.retriable
        assert await st.write([make_asset("after")], []) == {}  # the next call: on the other node
        assert [h.asset_id for h in await st.search(SearchQuery(vector=[1, 0, 0, 0], space="clip"))]
        assert await st.ready()
    assert await store.get("after") is not None


async def test_start_skips_a_node_that_does_not_answer(
    store: AssetStore, settings: WeaviateSettings, spaces: dict[str, int]
) -> None:
    first_down = settings.model_copy(update={"http_port": 1, "grpc_port": 2, "timeout_s": 2.0,
                                             "nodes": [direct(settings)]})
    async with AssetStore(first_down, spaces) as st:
        assert await st.ready()
    none_up = first_down.model_copy(update={"nodes": [WeaviateEndpoint(host="127.0.0.1", http_port=3, grpc_port=4)]})
    with pytest.raises(StoreUnavailable, match=r"no Weaviate node answers: 127\.0\.0\.1:1:2: .*; 127\.0\.0\.1:3:4: "):
        await AssetStore(none_up, spaces).start()
