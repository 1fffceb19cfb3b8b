"""The store's Weaviate client, on one node of a cluster at a time, moving on when that node goes away.

``start`` connects to the first node that answers (``WeaviateSettings.host`` first, then ``nodes``). A
call that fails retriably marks the node suspect; the next call first asks it whether it is ready and, when
it is not, connects to the next node that is. The failed call itself stays a retriable StoreUnavailable, so
the worker's retry loop (and a gateway client) simply calls again. Calls still running on the old client
finish or fail there: it is closed a timeout later, never under them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx
import weaviate
from pydantic import ValidationError
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.client import WeaviateAsyncClient

from services.config import WeaviateEndpoint, WeaviateSettings
from services.errors import ConfigError
from services.store.errors import StoreError, StoreUnavailable
from services.store.failures import Call, calling

log = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 2.0  # a node that takes longer to say it is ready is not one to move to


class NodeClient:
    """The client of the node in use; ``client`` is None until started and after close."""

    def __init__(self, settings: WeaviateSettings) -> None:
        self._s = settings
        self._endpoints = settings.endpoints()
        self._at = 0
        self.client: WeaviateAsyncClient | None = None
        self._suspect = False
        self._switch_lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None  # REST calls the weaviate client does not offer

    @property
    def endpoint(self) -> WeaviateEndpoint:
        """The node in use (the first one before start)."""
        return self._endpoints[self._at]

    async def start(self) -> None:
        """Connect to the first node that answers. Raises StoreUnavailable when none does."""
        if self.client is not None:
            return
        errors: list[StoreError] = []
        for at, endpoint in enumerate(self._endpoints):
            try:
                self.client = await self._connect(endpoint)
            except StoreError as e:
                errors.append(e)
                continue
            self._at = at
            return
        if len(errors) == 1:
            raise errors[0]
        raise StoreUnavailable("no Weaviate node answers: " + "; ".join(
            f"{endpoint}: {e}" for endpoint, e in zip(self._endpoints, errors, strict=True)))

    async def close(self) -> None:
        client, self.client = self.client, None
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        for task in self._closing:
            task.cancel()  # each closes its client on the way out
        await asyncio.gather(*self._closing, return_exceptions=True)
        if client is not None:
            await client.close()

    def suspect(self) -> None:
        """The last call failed retriably: the next one checks the node first (when there is another)."""
        if len(self._endpoints) > 1:
            self._suspect = True

    async def recheck(self) -> None:
        """Stay on the node in use if it is ready, else move to the next node that is. Never raises: when
        no node answers, the calls fail on the old client as before, and the next one looks again."""
        if not self._suspect:
            return
        async with self._switch_lock:
            if not self._suspect:  # another task checked meanwhile
                return
            self._suspect = False
            if self.client is None or await self._ready(self.endpoint):
                return
            n = len(self._endpoints)
            for at in [(self._at + k) % n for k in range(1, n)]:
                endpoint = self._endpoints[at]
                if not await self._ready(endpoint):
                    continue
                try:
                    client = await self._connect(endpoint)
                except StoreError as e:
                    log.info("Weaviate node %s is ready but refused a connection: %s", endpoint, e)
                    continue
                log.warning("Weaviate node %s is not ready; the store moves to %s", self.endpoint, endpoint)
                old, self.client, self._at = self.client, client, at
                self._retire(old)
                return
            self._suspect = True

    async def rest_get(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """GET ``/v1/<path>`` on the node in use, with the store's credentials and call timeout.

        For what the v4 client offers only as a gRPC search: reading one object by id, which over REST is
        Weaviate's replicated read (it compares the replicas at the consistency level asked and repairs).
        Raises httpx errors: call it inside ``calling``.
        """
        if self._http is None:
            headers = {"Authorization": f"Bearer {self._s.api_key.get_secret_value()}"} if self._s.api_key else {}
            self._http = httpx.AsyncClient(timeout=self._s.timeout_s, headers=headers)
        scheme = "https" if self._s.secure else "http"
        endpoint = self.endpoint
        return await self._http.get(f"{scheme}://{endpoint.host}:{endpoint.http_port}/v1/{path}", params=params)

    def _retire(self, client: WeaviateAsyncClient) -> None:
        task = asyncio.create_task(self._close_later(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_later(self, client: WeaviateAsyncClient) -> None:
        try:  # the calls in flight on it end by then (a write may take the longer cluster timeout)
            await asyncio.sleep(max(self._s.timeout_s, self._s.cluster_write_timeout_s) + 1.0)
        finally:
            await client.close()

    async def _ready(self, endpoint: WeaviateEndpoint) -> bool:
        scheme = "https" if self._s.secure else "http"
        url = f"{scheme}://{endpoint.host}:{endpoint.http_port}/v1/.well-known/ready"
        try:
            async with httpx.AsyncClient(timeout=min(_PROBE_TIMEOUT_S, self._s.timeout_s)) as http:
                return (await http.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    async def _connect(self, endpoint: WeaviateEndpoint) -> WeaviateAsyncClient:
        t = self._s.timeout_s
        # The client's own insert deadline must not end a write before the store's call bound does
        # (AssetStore._write_timeout_s: cluster_write_timeout_s on a replicated collection, else timeout_s,
        # enforced around every call). A write the client gave up on can still be applied by Weaviate later,
        # over a newer one written meanwhile: with insert=timeout_s (3 s in the cluster tests) the longer
        # cluster bound never took effect.
        insert = max(t, self._s.cluster_write_timeout_s)
        try:
            client = weaviate.use_async_with_custom(
                http_host=endpoint.host, http_port=endpoint.http_port, http_secure=self._s.secure,
                grpc_host=endpoint.host, grpc_port=endpoint.grpc_port, grpc_secure=self._s.secure,
                additional_config=AdditionalConfig(timeout=Timeout(query=t, insert=insert, init=t)),
                auth_credentials=Auth.api_key(self._s.api_key.get_secret_value()) if self._s.api_key else None,
                # The init checks call pypi.org on every connect (a version nag): no outside calls from here.
                skip_init_checks=True,
            )
        except ValidationError as e:  # the client validates its connection parameters with pydantic
            raise ConfigError(f"Weaviate connection settings: {e}") from e
        try:
            async with calling("connect", Call.ADMIN, t):
                await client.connect()
        except StoreError:
            await client.close()
            raise
        return client
