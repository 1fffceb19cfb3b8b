"""A backfill killed with SIGKILL part way through resumes where Kafka last acknowledged, on the real Kafka:
every event of the source ends up in the topic, the ones acknowledged before the kill exactly once, and the
rerun starts after them, not from event 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from cli.invoke import XMODAL, with_root
from services.publish.checkpoint import CheckpointFile
from tests.harness.lanes import Lane, topic_records

pytestmark = pytest.mark.integration
N = 2000
RATE = 400  # events/s: the first run lasts about 5 s, long enough to kill it part way
CHUNK = RATE // 10  # events per chunk at that rate (services.publish.ratelimit.chunk_size)


def write_source(path: Path) -> Path:
    with path.open("w") as fh:
        for i in range(N):
            fh.write(json.dumps({"schema_version": 1, "asset_id": f"bf-{i:04d}", "modality": "text",
                                 "text": f"backfill item {i}", "metadata": {"i": i},
                                 "event_time": "2026-12-01T10:00:00Z"}) + "\n")
    return path


async def start_publish(lane: Lane, *args: str, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(*XMODAL, "publish", *args, env=with_root(lane.env()), stdout=out,
                                                    stderr=subprocess.STDOUT, start_new_session=True)


async def run_publish(lane: Lane, *args: str) -> tuple[int, str]:
    """Run `xmodal publish` to its end: exit status, stdout."""
    proc = await asyncio.create_subprocess_exec(*XMODAL, "publish", *args, env=with_root(lane.env()),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + ("" if proc.returncode == 0 else err.decode())


def text_of(log: Path) -> str:
    return log.read_text(errors="replace")


async def acked_at_least(file: CheckpointFile, n: int, proc: asyncio.subprocess.Process, log: Path) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.returncode is None, f"publish ended early ({proc.returncode}):\n{text_of(log)}"
        saved = file.load()  # always whole: it is replaced atomically
        if saved is not None and saved.acked >= n:
            return saved.acked
        await asyncio.sleep(0.02)
    raise AssertionError(f"the checkpoint never reached {n} acked events:\n{text_of(log)}")


async def keys_in(lane: Lane) -> Counter[str]:
    """Every record's key in the lane's topic."""
    return Counter(r.key.decode() for r in await topic_records(lane) if r.key is not None)


async def test_a_killed_backfill_resumes_after_the_last_acked_chunk(lane: Lane, tmp_path: Path) -> None:
    source = write_source(tmp_path / "backfill.jsonl")
    file = CheckpointFile(tmp_path / "checkpoint.json")
    log = tmp_path / "publish.log"

    first = await start_publish(lane, str(source), "--rate", str(RATE), "--checkpoint", str(file.path), log=log)
    try:
        await acked_at_least(file, N // 5, first, log)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    killed = file.load()
    assert killed is not None and killed.state == "in_progress"
    acked = killed.acked
    assert N // 5 <= acked < N, f"killed too late to prove anything: {acked} of {N} acked"

    rc, out = await run_publish(lane, str(source), "--checkpoint", str(file.path))
    assert rc == 0, out
    assert f"resuming at event {acked:,} of {N:,}" in out
    assert f"published {N - acked:,} events (resumed at event {acked:,} of {N:,})" in out
    assert "0 dead on arrival" in out
    done = file.load()
    assert done is not None and (done.state, done.acked, done.total) == ("done", N, N)

    rc, out = await run_publish(lane, str(source), "--checkpoint", str(file.path))
    assert rc == 0, out
    assert f"is complete: all {N:,} events were acknowledged by {lane.kafka.topic}" in out

    keys = await keys_in(lane)
    wanted = [f"bf-{i:04d}" for i in range(N)]
    assert set(keys) == set(wanted), f"missing from the topic: {sorted(set(wanted) - set(keys))[:10]}"
    # acknowledged before the kill: sent once (idempotent producer) and never again, so the rerun resumed
    assert all(keys[k] == 1 for k in wanted[:acked]), [k for k in wanted[:acked] if keys[k] != 1][:10]
    # at most the chunk in flight at the kill (sent, not yet recorded) went twice; from 0 it would be `acked` more
    assert sum(keys.values()) - N <= CHUNK, f"{sum(keys.values()) - N} events sent twice"
    assert max(done.offsets.values()) >= 0 and set(done.offsets) <= set(range(lane.partitions))
