"""Compression: memory and recall@10 of one space with and without vector compression.

For each setting (``--settings``, default none, rq8, bq, rq1, sq; pq on request) a Weaviate process of its own
(the stack's binary on other ports, a temporary data dir, Prometheus metrics and Go profiling on, so nothing
else lives in its memory) gets one collection, made by AssetStore with the space's VectorIndexSettings (the
code under test), filled with ``--n`` vectors (512-d like CLIP ViT-B/32, in clusters like images of a
catalogue: random pairs at cosine ~0.47, same-cluster pairs ~0.81) in batches of 256. Then:

- recall@10 of ``--queries`` searches (new points from the same clusters) against exact brute force (numpy,
  cosine, on the same vectors), and the searches' p50 latency;
- memory: the process is restarted, so the figures are those of the index loaded from disk (no import
  garbage, no memtables waiting to be flushed): the Go heap in use after a forced GC and the process RSS,
  each minus the same figure of the empty process with the empty collection.

Prints a table, with ratios to ``none`` (the baseline, measured in the same run), and writes
bench/results/compression.json. Not part of `make bench`; heavy, so under the shared lock:

    flock /tmp/xmodal-heavy.lock .venv/bin/python -m bench.compression              # 100k vectors
    flock /tmp/xmodal-heavy.lock .venv/bin/python -m bench.compression --n 5000     # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import percentile
from services.config import StackSettings, VectorIndexSettings, WeaviateSettings
from services.localstack.weaviate import WeaviateNode
from services.store import AssetObject, AssetStore, SearchQuery

RESULTS = Path(__file__).parent / "results"
DIM = 512
SPACE = "clip"
T0 = datetime(2026, 12, 1, tzinfo=UTC)
#: The bench's own Weaviate ports, clear of the stack's (8080...) and of a local cluster's (+10 per node).
PORTS = {"http": 8280, "grpc": 50251, "gossip": 7746, "data": 7747, "raft": 8500, "raft_rpc": 8501,
         "profiling": 6260, "metrics": 2312}


#: Settings turned on in place after the fill: Weaviate 1.39 starts a trained quantizer (sq, pq) set at
#: creation only from its asynchronous indexing queue (ASYNC_INDEXING=true), which the stack leaves off.
TRAINED = frozenset({"sq", "pq"})


def setting(name: str, n: int) -> VectorIndexSettings:
    """The index settings a name of ``--settings`` stands for (sq and pq train on up to 100,000 vectors)."""
    training = min(100_000, n)
    return {
        "none": VectorIndexSettings(),
        "rq8": VectorIndexSettings(compression="rq", rq_bits=8),
        "rq1": VectorIndexSettings(compression="rq", rq_bits=1),
        "sq": VectorIndexSettings(compression="sq", training_limit=training),
        "bq": VectorIndexSettings(compression="bq"),
        "pq": VectorIndexSettings(compression="pq", pq_segments=DIM // 4, training_limit=training),
    }[name]


def clustered(n: int, queries: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` data and ``queries`` query vectors, unit length, in n/100 clusters around a shared mean direction
    (CLIP embeddings are anisotropic: unrelated images are far from orthogonal)."""
    rng = np.random.default_rng(seed)

    def unit(x: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = x / np.linalg.norm(x, axis=-1, keepdims=True)
        return scaled

    mean = unit(rng.standard_normal(DIM))
    centers = unit(rng.standard_normal((max(10, n // 100), DIM)))
    labels = rng.integers(len(centers), size=n + queries)
    points = 0.7 * mean + 0.6 * centers[labels] + 0.45 * unit(rng.standard_normal((n + queries, DIM)))
    points = unit(points).astype(np.float32)
    return points[:n], points[n:]


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k most cosine-similar data vectors of each query (unit vectors: the dot product)."""
    sims = queries @ data.T
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
    ranked: np.ndarray = np.take_along_axis(top, order, axis=1)
    return ranked


class BenchWeaviate:
    """A Weaviate process of the bench's own: the stack's binary, its ports, a data dir that is thrown away."""

    def __init__(self, data_dir: Path) -> None:
        stack = StackSettings(
            weaviate=WeaviateSettings(http_port=PORTS["http"], grpc_port=PORTS["grpc"]), state_dir=data_dir,
            weaviate_gossip_port=PORTS["gossip"], weaviate_data_port=PORTS["data"],
            weaviate_raft_port=PORTS["raft"], weaviate_raft_rpc_port=PORTS["raft_rpc"],
            weaviate_profiling_port=PORTS["profiling"],
        )
        self.node = WeaviateNode(stack)
        if not self.node.installed:
            raise SystemExit("no Weaviate binary: run `make install-stack` (or `./xmodal stack up`) first")
        self.settings = stack.weaviate.model_copy(update={"collection": "CompressionBench", "timeout_s": 60.0})
        self.env = self.node.env() | {"GO_PROFILING_DISABLE": "false", "DEBUG_ENDPOINTS_ENABLED": "true",
                                      "PROMETHEUS_MONITORING_ENABLED": "true",
                                      "PROMETHEUS_MONITORING_PORT": str(PORTS["metrics"])}
        self.log = data_dir / "weaviate.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        taken = [p for p in PORTS.values() if _listening(p)]
        if taken:
            raise SystemExit(f"ports {taken} are taken: is another bench.compression running?")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.node.argv(), env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not self.node.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bench's Weaviate did not start; see {self.log}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Weaviate flushes its memtables and closes the commit logs
            self.proc.wait(timeout=120)
        self.proc = None

    def memory(self) -> dict[str, float]:
        """Go heap in use after a forced GC, and the process RSS, in MiB."""
        assert self.proc is not None
        _get(f"http://127.0.0.1:{PORTS['profiling']}/debug/pprof/heap?gc=1")  # gc=1: collect before profiling
        metrics = _get(f"http://127.0.0.1:{PORTS['metrics']}/metrics").decode()
        heap = float(re.search(r"^go_memstats_heap_inuse_bytes (\S+)$", metrics, re.M)[1])  # type: ignore[index]
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        rss_kib = float(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)[1])  # type: ignore[index]
        return {"heap_mib": heap / 2**20, "rss_mib": rss_kib / 1024}

    def settled_memory(self, timeout_s: float = 60.0) -> dict[str, float]:
        """Memory once the loaded index stops growing (the vector cache is filled in the background)."""
        last = self.memory()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(2.0)
            now = self.memory()
            if abs(now["heap_mib"] - last["heap_mib"]) < max(1.0, 0.01 * last["heap_mib"]):
                return now
            last = now
        return last

    def shard(self) -> dict[str, Any]:
        nodes = json.loads(_get(f"http://127.0.0.1:{PORTS['http']}/v1/nodes?output=verbose"))
        shards = [s for n in nodes["nodes"] for s in n.get("shards") or [] if s["class"] == self.settings.collection]
        return dict(shards[0]) if shards else {}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return bytes(resp.read())


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def weaviate_of_its_own() -> Iterator[BenchWeaviate]:
    with tempfile.TemporaryDirectory(prefix="xmodal-compression-") as tmp:
        server = BenchWeaviate(Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def objects(data: np.ndarray, start: int, stop: int) -> list[AssetObject]:
    return [
        AssetObject(asset_id=f"v{i}", modality="image", text=None, uri=None, metadata={}, content_hash=f"h{i}",
                    model_id="bench", event_time=T0, source_partition=0, source_offset=i,
                    vectors={SPACE: data[i].tolist()})
        for i in range(start, stop)
    ]


async def fill(store: AssetStore, data: np.ndarray, batch: int = 256, in_flight: int = 2) -> float:
    """Write every vector, ``in_flight`` batches at a time; vectors/s."""
    t0 = time.perf_counter()
    starts = list(range(0, len(data), batch))
    for group in range(0, len(starts), in_flight):
        chunk = starts[group:group + in_flight]
        results = await asyncio.gather(*(store.write(objects(data, s, min(s + batch, len(data))), [])
                                         for s in chunk))
        if failed := [f for r in results for f in r.values()]:
            raise RuntimeError(f"{len(failed)} vectors refused, e.g. {failed[0]}")
    return len(data) / (time.perf_counter() - t0)


async def wait_indexed(server: BenchWeaviate, index: VectorIndexSettings, timeout_s: float = 600) -> None:
    """Until the shard's vector queue is empty and, for compressed settings, the index is compressed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shard = server.shard()
        if shard.get("vectorQueueLength", 1) == 0 and (index.compression == "none" or shard.get("compressed")):
            return
        await asyncio.sleep(1.0)
    raise RuntimeError(f"the index is not ready (or not compressed) after {timeout_s} s: {server.shard()}")


async def recall(store: AssetStore, queries: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, float]:
    """Mean recall@k against the exact neighbours, and the searches' p50 latency in ms."""
    found, took = [], []
    for q, exact in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        hits = await store.search(SearchQuery(space=SPACE, vector=q.tolist(), limit=k))
        took.append((time.perf_counter() - t0) * 1000)
        got = {int(h.asset_id[1:]) for h in hits}
        found.append(len(got & set(exact.tolist())) / k)
    return float(np.mean(found)), percentile(took, 50)


async def measure(name: str, index: VectorIndexSettings, data: np.ndarray, *, queries: np.ndarray,
                  truth: np.ndarray, k: int) -> dict[str, Any]:
    with weaviate_of_its_own() as server:
        weaviate = server.settings.model_copy(update={"vector_index": {SPACE: index}})
        created = weaviate.model_copy(update={"vector_index": {}}) if name in TRAINED else weaviate
        async with AssetStore(created, {SPACE: DIM}) as store:
            await store.ensure_collection()
            empty = server.settled_memory()
            rate = await fill(store, data)
        t0 = time.perf_counter()
        async with AssetStore(weaviate, {SPACE: DIM}) as store:
            await store.ensure_collection()  # trained quantizers: turned on in place, trained on what is stored
            await wait_indexed(server, index)
            after_fill = server.memory()
        compress_s = time.perf_counter() - t0
        server.stop()  # restart: the index as a deployment holds it, loaded from disk
        server.start()
        async with AssetStore(weaviate, {SPACE: DIM}) as store:
            await store.ensure_collection()  # the settings are what Weaviate has: nothing changes
            count = await store.count()
            await wait_indexed(server, index)
            loaded = server.settled_memory()
            recall_at_k, p50 = await recall(store, queries, truth, k)
    if count != len(data):
        raise RuntimeError(f"{name}: {count} objects stored, {len(data)} written")
    return {
        "setting": name, "index": index.model_dump(), "vectors_per_s": round(rate),
        "turned_on": "in place after the fill" if name in TRAINED else "at creation",
        "compress_s": round(compress_s, 1),
        f"recall_at_{k}": round(recall_at_k, 4), "search_p50_ms": p50,
        "heap_mib": round(loaded["heap_mib"] - empty["heap_mib"], 1),
        "rss_mib": round(loaded["rss_mib"] - empty["rss_mib"], 1),
        "heap_after_fill_mib": round(after_fill["heap_mib"] - empty["heap_mib"], 1),
        "empty_heap_mib": round(empty["heap_mib"], 1), "empty_rss_mib": round(empty["rss_mib"], 1),
    }


def table(rows: list[dict[str, Any]], k: int) -> str:
    base = next((r for r in rows if r["setting"] == "none"), rows[0])
    head = ("setting", f"recall@{k}", "vs none", "heap MiB", "x none", "RSS MiB", "search p50 ms", "fill vec/s")
    lines = [head]
    key = f"recall_at_{k}"
    for r in rows:
        lines.append((r["setting"], f"{r[key]:.3f}", f"{r[key] - base[key]:+.3f}",
                      f"{r['heap_mib']:.0f}", f"{r['heap_mib'] / max(base['heap_mib'], 1e-9):.2f}",
                      f"{r['rss_mib']:.0f}", f"{r['search_p50_ms']:.1f}", str(r["vectors_per_s"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines)


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=100_000, help="vectors in the collection (100,000)")
    ap.add_argument("--queries", type=int, default=200, help="queries scored against brute force (200)")
    ap.add_argument("--k", type=int, default=10, help="recall@k (10)")
    ap.add_argument("--settings", default="none,rq8,bq,rq1,sq",
                    help="comma-separated: none, rq8, rq1, sq, bq, pq (pq: DIM/4 segments, slow to train)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS / "compression.json")
    args = ap.parse_args(argv)
    data, queries = clustered(args.n, args.queries, seed=args.seed)
    truth = exact_top(data, queries, args.k)
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for name in args.settings.split(","):
        print(f"-- {name}: filling {args.n:,} vectors ...", flush=True)
        try:
            rows.append(await measure(name, setting(name, args.n), data, queries=queries, truth=truth, k=args.k))
        except RuntimeError as e:  # one setting that fails is reported; the others are still measured
            failed.append({"setting": name, "error": str(e)})
            print(f"!! {name}: {e}", flush=True)
            continue
        print(json.dumps(rows[-1]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({  # after every setting: a run cut short keeps what it measured
            "when": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
            "cpus": len(os.sched_getaffinity(0)), "n": args.n, "dim": DIM, "queries": args.queries,
            "k": args.k, "weaviate": StackSettings().weaviate_version, "rows": rows, "failed": failed,
        }, indent=2) + "\n")
    if rows:
        print(table(rows, args.k))
        print(f"wrote {args.out}")
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    asyncio.run(main())
