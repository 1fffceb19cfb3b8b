"""`xmodal gateway`: the search API, the search page and the status page."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "gateway", help="serve the search API, the search page (/) and the status page (/status)",
        description="Runs the aiohttp gateway on XMODAL_HOST:XMODAL_PORT (127.0.0.1:8000): /v1/search, "
        "/v1/assets, /openapi.json, /metrics, /healthz, /readyz. API keys, limits and CORS are settings "
        "(XMODAL_API_KEYS, XMODAL_MAX_CONCURRENCY, XMODAL_CORS_ORIGINS...).",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.config import GatewaySettings
    from services.gateway.server import run_gateway

    run_gateway(GatewaySettings())
    return 0
