"""The gateway runs its golden queries against itself, on a schedule, in-process.

With ``golden_file`` set, create_app loads the file (an invalid one, or a request the API would refuse,
stops the start with the entry at fault) and registers a :class:`GoldenSchedule` that starts with the app:
a first run right away in the background (startup never waits for it), then one every
``golden_interval_s``. Each golden request goes the way an HTTP search goes, minus the socket: validated
as the JSON route validates it, then the gateway's own Searcher, then the response body as the route
dumps it. Each run sets the xmodal_golden_* metrics and the status page's "Golden queries" section.

>>> section = golden_status(web.Application())
>>> section["configured"], "XMODAL_GOLDEN_FILE" in section["hint"]
(False, True)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from services.config import GatewaySettings
from services.evaluation.golden import (
    DEMO_GOLDEN_FILE,
    GoldenFileError,
    GoldenQuery,
    GoldenReport,
    GoldenSearchError,
    Search,
    check_golden,
    load_golden,
)
from services.gateway.deadline import request_deadline
from services.gateway.errors import BadRequest
from services.gateway.models import SearchRequest, dump
from services.gateway.query import Query, Searcher
from services.gateway.routes import invalid
from services.lifecycle import BackgroundTask
from services.monitoring import metrics

log = logging.getLogger(__name__)

_HINT = (f"No golden file is configured. Set XMODAL_GOLDEN_FILE to a YAML file of golden queries (the demo's is "
         f"{DEMO_GOLDEN_FILE.name}, shipped in services/evaluation/) and the gateway checks them every "
         "XMODAL_GOLDEN_INTERVAL_S seconds; xmodal eval --golden FILE checks a running gateway once.")


RECHECK_FAILED_S = 5.0  # how soon a run with failures is followed by the next one


class GoldenSchedule:
    """Runs ``goldens`` through ``search`` every ``interval_s`` seconds (the first at start; after a run with
    failures, within ``RECHECK_FAILED_S``); keeps the last report and exports it as metrics."""

    def __init__(self, goldens: Sequence[GoldenQuery], search: Search, *, interval_s: float, source: Path,
                 timeout_s: float | None = None) -> None:
        self.goldens = list(goldens)
        self.search = search
        self.interval_s = interval_s
        self.source = source
        self.timeout_s = timeout_s
        self.last: GoldenReport | None = None
        self.runs = 0
        # a bug in the schedule must be loud: the page would otherwise show an old run as the last one
        self._task = BackgroundTask(self._loop, name="golden-queries", crashed="golden queries stopped")
        self._ran = asyncio.Condition()

    async def start(self) -> None:
        """Start running in the background (idempotent); returns at once."""
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _loop(self) -> None:
        while True:
            report = await self.run_once()
            # A failing run is checked again soon: at start the catalogue is often still being indexed (the demo
            # publishes after the gateway is up), and a page red for a whole interval would mislead.
            await asyncio.sleep(self.interval_s if report.ok else min(self.interval_s, RECHECK_FAILED_S))

    async def run_once(self) -> GoldenReport:
        """Check every golden query now, keep the report and export it (the timer calls this; tests may)."""
        report = await check_golden(self.goldens, self.search, timeout_s=self.timeout_s)
        self.last, self.runs = report, self.runs + 1
        failed = {f.name for f in report.failed}
        # The series are this file's queries only: a query renamed or removed since the last run disappears
        # from /metrics instead of reporting its last value forever.
        metrics.GOLDEN_QUERY_OK.clear()
        for name in report.names:
            metrics.GOLDEN_QUERY_OK.labels(name).set(0 if name in failed else 1)
        metrics.GOLDEN_PASS_RATIO.set(report.ratio)
        metrics.GOLDEN_LAST_RUN.set(report.checked_at.timestamp())
        metrics.GOLDEN_RUNS.inc()
        if report.failed:
            log.warning("golden queries: %d of %d failed: %s", len(report.failed), len(report.names),
                        "; ".join(f"{f.name}: {f.reason}" for f in report.failed))
        async with self._ran:
            self._ran.notify_all()
        return report

    async def wait_runs(self, n: int) -> GoldenReport:
        """Wait until ``n`` runs have finished in all, and return the last one's report. To see a change
        through, wait for ``runs + 2``: the run in flight may have started before it."""
        async with self._ran:
            await self._ran.wait_for(lambda: self.runs >= n)
        assert self.last is not None  # a run finished
        return self.last

    def status(self) -> dict[str, Any]:
        """The status page's section: what is configured and the last run (None before the first)."""
        last = self.last
        return {"configured": True, "file": str(self.source), "queries": len(self.goldens),
                "interval_s": self.interval_s, "running": self._task.running,
                "runs": self.runs, "ok": None if last is None else last.ok,
                "last": None if last is None else last.as_json()}


GOLDEN = web.AppKey("golden", GoldenSchedule)


def searcher_search(searcher: Searcher, *, timeout_s: float) -> Search:
    """A Search over the gateway's own Searcher: the body validated as POST /v1/search validates it (strict
    JSON), searched within ``timeout_s``, answered as the route answers it."""

    async def search(body: dict[str, Any]) -> dict[str, Any]:
        req = validated(body)
        try:
            async with request_deadline(timeout_s):
                return dump(await searcher.search(Query.of(req)))
        except TimeoutError:
            raise GoldenSearchError(f"the search took longer than the request timeout ({timeout_s:g} s)",
                                    retriable=True) from None

    return search


def validated(body: dict[str, Any]) -> SearchRequest:
    """The request as the JSON route reads it; an invalid one raises the route's 400 error."""
    try:
        return SearchRequest.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as exc:
        raise invalid(exc) from None


def add_golden(app: web.Application, settings: GatewaySettings, searcher: Searcher) -> None:
    """With ``settings.golden_file`` set: load it, check its requests, and run it with the app (started on
    startup, stopped on cleanup). Raises GoldenFileError (a ConfigError) for a file that cannot be used."""
    if settings.golden_file is None:
        return
    goldens = load_golden(settings.golden_file)
    for i, golden in enumerate(goldens, start=1):
        try:
            validated(golden.request)
        except BadRequest as exc:
            raise GoldenFileError(f"{settings.golden_file}, entry {i} ({golden.name!r}): the request is not a "
                                  f"valid /v1/search body: {exc}") from None
    schedule = GoldenSchedule(goldens, searcher_search(searcher, timeout_s=settings.request_timeout_s),
                              interval_s=settings.golden_interval_s, source=settings.golden_file)
    app[GOLDEN] = schedule

    async def start(_: web.Application) -> None:
        await schedule.start()

    async def stop(_: web.Application) -> None:
        await schedule.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def golden_status(app: web.Application) -> dict[str, Any]:
    """The app's golden section for /v1/status: its schedule's, or how to configure one."""
    schedule = app.get(GOLDEN)
    return schedule.status() if schedule is not None else {"configured": False, "hint": _HINT}

