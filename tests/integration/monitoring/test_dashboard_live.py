"""Every series the Grafana dashboard queries is one a LIVE worker (or the gateway) exports, with the labels
the query uses: scraped from a real worker that processed events, good and bad."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.monitoring import metrics
from services.publish import EventPublisher
from tests.harness.lanes import Lane, WorkerProcess, read_dead_letters, wait_stored
from tests.integration.monitoring.helpers import eventually, text_events
from tests.unit.monitoring.promql import dashboard, exposed_series, exprs, grouping_labels, selectors
from tests.unit.monitoring.test_dashboard_json import TARGET_LABELS, declared_series

pytestmark = pytest.mark.integration

#: the gateway's metrics (it serves the same registry module; these are the ones only it sets)
GATEWAY = {m._name for m in (metrics.REQUESTS, metrics.REQUEST_SECONDS, metrics.QUERY_CACHE, metrics.REJECTED,
                             metrics.CONSISTENCY_WAIT, metrics.QUERY_QUEUE_DEPTH, metrics.QUERY_BATCH_SIZE,
                             metrics.QUERY_QUEUE_SECONDS, metrics.QUERY_INFERENCE_SECONDS,
                             metrics.QUERY_FAILURES)}


@pytest.fixture
async def worked(lane: Lane) -> AsyncIterator[WorkerProcess]:
    worker = WorkerProcess(lane)
    worker.start()
    try:
        await worker.wait_ready()
        async with EventPublisher(lane.kafka) as pub:
            good = await pub.publish_many(text_events(6, prefix="dash"))
            bad = await pub.publish_raw(b"broken", b"{not json")
        await wait_stored(lane, [*good, bad])
        await read_dead_letters(lane, expected=1)
        yield worker
    finally:
        worker.stop()


async def test_every_dashboard_query_names_a_live_series(worked: WorkerProcess) -> None:
    worker = worked
    await eventually(lambda: "xmodal_consumer_lag{" in worker.metrics_text(), "the worker exports lag gauges")
    live = exposed_series(text_string_to_metric_families(worker.metrics_text()))
    with_samples = {fam.name for fam in text_string_to_metric_families(worker.metrics_text()) if fam.samples}
    for name in ("xmodal_freshness_seconds", "xmodal_events", "xmodal_dead_letters", "xmodal_stage_seconds",
                 "xmodal_batch_size", "xmodal_consumer_lag", "xmodal_consumer_group_members"):
        assert name in with_samples, f"the worker has no {name} series after processing events"
    gateway = {k: v for k, v in declared_series().items() if any(k.startswith(g) for g in GATEWAY)}
    known = {name: gateway.get(name, set()) | live.get(name, set()) for name in {*gateway, *live}}

    problems = []
    for title, expr in exprs(dashboard()):
        used = selectors(expr)
        for name, labels in used:
            if name not in known:
                problems.append(f"{title}: {name} is exported by no service")
            elif known[name] and labels - known[name] - TARGET_LABELS:
                problems.append(f"{title}: {name} has no label {labels - known[name]}")
        have = set().union(*(known.get(n, set()) for n, _ in used)) | TARGET_LABELS
        if any(known.get(n) for n, _ in used) and grouping_labels(expr) - have:
            problems.append(f"{title}: grouped by labels no series has: {grouping_labels(expr) - have}")
    assert not problems, "\n".join(problems)
