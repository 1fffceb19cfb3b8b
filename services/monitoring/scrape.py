"""Scraping the workers' /metrics for the status page, one replica at a time.

A configured URL whose host is a name (``http://worker:6066/metrics`` in docker-compose) is resolved on every
sample and each IPv4 address is scraped as its own worker: Docker's DNS answers a scaled service with one
record per replica, and mixing replicas' counters in one series would make nonsense of the deltas.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from services.monitoring.promtext import WorkerFigures, parse_worker_metrics


@dataclass
class WorkerState:
    """One worker replica as the status page knows it."""

    url: str  # as configured
    target: str | None  # what is scraped: the URL with one resolved address; None when the name did not resolve
    up: bool = False
    error: str | None = "not scraped yet"
    last_ok: float | None = None
    figures: WorkerFigures | None = None  # from the last good scrape


class WorkerScraper:
    """Keeps one WorkerState per replica; ``scrape_all()`` refreshes them all concurrently."""

    def __init__(self, urls: Sequence[str], *, timeout_s: float, clock: Callable[[], float] = time.time) -> None:
        self.urls = list(urls)
        self.timeout_s = timeout_s
        self.workers: dict[str, WorkerState] = {}
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def scrape_all(self) -> dict[str, WorkerFigures | None]:
        """Scrape every replica; returns each replica's figures from *before* this scrape (None when it is
        new), so the caller can take deltas."""
        targets = await asyncio.gather(*(resolve(url) for url in self.urls))
        current: dict[str, WorkerState] = {}
        for url, (found, error) in zip(self.urls, targets, strict=True):
            if error is not None:
                current[url] = WorkerState(url, None, error=error)
            for target in found:
                current[target] = self.workers.get(target) or WorkerState(url, target)
        self.workers = current  # replicas that left DNS are forgotten with their counters
        before = {key: w.figures for key, w in current.items()}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        await asyncio.gather(*(self._scrape(self._session, w) for w in current.values() if w.target))
        return before

    async def _scrape(self, session: aiohttp.ClientSession, worker: WorkerState) -> None:
        assert worker.target is not None
        try:
            async with session.get(worker.target) as resp:
                resp.raise_for_status()
                text = await resp.text()
            figures = parse_worker_metrics(text)
        except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError) as exc:
            worker.up, worker.error = False, self._describe(exc)
            return
        worker.up, worker.error, worker.last_ok, worker.figures = True, None, self._clock(), figures

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, aiohttp.ClientResponseError):
            return f"HTTP {exc.status}"
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.timeout_s:g}s"
        return str(exc) or type(exc).__name__

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def resolve(url: str) -> tuple[list[str], str | None]:
    """The URLs to scrape for ``url`` (one per IPv4 address of its host; the URL itself when the host is an
    address literal or resolves to one address) and an error text when it does not resolve."""
    parts = urlsplit(url)
    host = parts.hostname
    if host is None:
        return [], f"not a URL: {url!r}"
    if _is_ip(host):
        return [url], None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port, family=socket.AF_INET,
                                                             type=socket.SOCK_STREAM)
    except OSError as exc:
        return [], f"cannot resolve {host}: {exc}"
    addresses = sorted({str(info[4][0]) for info in infos})
    if len(addresses) <= 1:
        return [url], None  # keep the name: readable, and the same replica either way
    port = f":{parts.port}" if parts.port else ""
    return [urlunsplit(parts._replace(netloc=f"{ip}{port}")) for ip in addresses], None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
