"""Toxiproxy in front of the local Weaviate, for the tests that cut, slow or break its network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from services.localstack.toxiproxy import Proxy


@dataclass
class WeaviateProxies:
    """Toxiproxy in front of Weaviate's REST and gRPC ports; ``env`` points a worker or gateway at them."""

    http: Proxy
    grpc: Proxy

    @property
    def both(self) -> tuple[Proxy, Proxy]:
        return self.http, self.grpc

    def env(self) -> dict[str, str]:
        return {"XMODAL_WEAVIATE__HTTP_PORT": str(self.http.port), "XMODAL_WEAVIATE__GRPC_PORT": str(self.grpc.port)}

    def down(self) -> None:
        for p in self.both:
            p.disable()

    def up(self) -> None:
        for p in self.both:
            p.enable()

    def add_toxic(self, kind: str, **attributes: int) -> None:
        for p in self.both:
            for stream in ("upstream", "downstream"):
                p.add_toxic(kind, stream=stream, **cast(dict[str, Any], attributes))  # all toxic attributes
