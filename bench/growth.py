"""The growth table (`make bench SCALE=1`, long): Weaviate at 10k, 100k and 1M objects of 512-d vectors.

Vectors are given (random unit vectors of 512 dimensions, the size of CLIP ViT-B/32's), so no model runs: this
is the store's own behaviour as the collection grows. For each compression setting (``none``: HNSW on float32
vectors; ``rq``: Weaviate's rotational quantization, 8 bits, which needs no training) one collection is filled
in batches up to each size in turn; at each size:

- query p50/p99: ``--growth-queries`` near_vector searches (limit 10), one at a time;
- freshness: one object inserted, then searched for with its own vector until it is among the first 10 hits
  (insert -> searchable), 20 times;
- the fill rate of the step that reached the size (objects/s, batches of ``batch``);
- Weaviate's resident memory (VmRSS of its process) once the size is reached: what compression saves.

Beside them, the write floor at 512-d on an empty collection: one object per call against batches.
Run alone with ``python -m bench.growth --sizes 10000,100000`` (prints the rows as JSON and writes them to
``--out``, bench/results/growth.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import weaviate
from weaviate.classes.config import Configure, DataType, Property
from weaviate.classes.data import DataObject
from weaviate.client import WeaviateAsyncClient
from weaviate.collections.collection import CollectionAsync

from bench.common import percentile
from bench.cpu import stack_processes
from bench.report import machine
from bench.rss import tree_rss_kib
from services.config import WeaviateSettings
from services.localstack import LocalStack

DIM = 512
SPACE = "clip"
# rq first: Go gives freed heap back to the OS lazily, so the RSS of whichever runs second includes what the
# first left; float32 (``none``) needs more than rq, so run second it still reads its own need.
COMPRESSIONS = ("rq", "none")


def unit_vectors(rng: np.random.Generator, n: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    """``n`` random unit vectors of ``dim`` dimensions (float32).

    >>> v = unit_vectors(np.random.default_rng(0), 3, 4)
    >>> v.shape, bool(np.allclose(np.linalg.norm(v, axis=1), 1.0))
    ((3, 4), True)
    """
    v = rng.standard_normal((n, dim), dtype=np.float32)
    out: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


@asynccontextmanager
async def connected(settings: WeaviateSettings) -> AsyncIterator[WeaviateAsyncClient]:
    async with weaviate.use_async_with_custom(
        http_host=settings.host, http_port=settings.http_port, http_secure=False,
        grpc_host=settings.host, grpc_port=settings.grpc_port, grpc_secure=False,
    ) as client:
        yield client


async def create(client: WeaviateAsyncClient, name: str, compression: str) -> CollectionAsync:
    quantizer = Configure.VectorIndex.Quantizer.rq() if compression == "rq" else None
    return await client.collections.create(
        name, properties=[Property(name="n", data_type=DataType.INT)],
        vector_config=[Configure.Vectors.self_provided(
            name=SPACE, vector_index_config=Configure.VectorIndex.hnsw(quantizer=quantizer))],
    )


async def fill(coll: CollectionAsync, rng: np.random.Generator, count: int, start: int, batch: int) -> float:
    """Insert ``count`` random vectors (object numbers from ``start``) in batches, each made just before it is
    sent (1M vectors at once would take 2 GB here); the objects/s achieved."""
    t0 = time.perf_counter()
    for i in range(0, count, batch):
        chunk = unit_vectors(rng, min(batch, count - i))
        result = await coll.data.insert_many([
            DataObject(properties={"n": start + i + j}, vector={SPACE: v.tolist()}) for j, v in enumerate(chunk)])
        if result.errors:
            raise RuntimeError(f"{len(result.errors)} objects refused, e.g. {next(iter(result.errors.values()))}")
        done = i + len(chunk)
        if count >= 100_000 and done % 100_000 < batch:
            print(f"growth: filled {start + done:,} objects ({done / (time.perf_counter() - t0):,.0f}/s)", flush=True)
    return count / max(time.perf_counter() - t0, 1e-9)


async def query_latency(coll: CollectionAsync, queries: npt.NDArray[np.float32]) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        await coll.query.near_vector(q.tolist(), target_vector=SPACE, limit=10)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def insert_to_searchable(coll: CollectionAsync, vectors: npt.NDArray[np.float32]) -> list[float]:
    """For each vector: insert it as one object, then search with it until it is among the first 10 hits (with
    compression the nearest may be ranked by its quantized distance: not always first) (ms)."""
    out = []
    for v in vectors:
        uid = uuid.uuid4()
        t0 = time.perf_counter()
        await coll.data.insert({"n": -1}, uuid=uid, vector={SPACE: v.tolist()})
        while True:
            hits = await coll.query.near_vector(v.tolist(), target_vector=SPACE, limit=10)
            if any(o.uuid == uid for o in hits.objects):
                break
            if time.perf_counter() - t0 > 30:
                raise RuntimeError("an inserted object was not searchable within 30 s")
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def write_floor(client: WeaviateAsyncClient, rng: np.random.Generator, *, single: int = 500,
                      batched: int = 10_000, batch: int = 1000) -> dict[str, Any]:
    """Weaviate's write rate at 512-d on an empty collection: one object per call, then batches."""
    name = f"Growth{uuid.uuid4().hex[:8]}"
    coll = await create(client, name, "none")
    try:
        t0 = time.perf_counter()
        for i, v in enumerate(unit_vectors(rng, single)):
            await coll.data.insert({"n": i}, vector={SPACE: v.tolist()})
        one = single / (time.perf_counter() - t0)
        many = await fill(coll, rng, batched, single, batch)
    finally:
        await client.collections.delete(name)
    return {"one_per_call_per_s": round(one, 1), "batched_per_s": round(many, 1), "batch": batch,
            "one_per_call_objects": single, "batched_objects": batched}


def weaviate_pid() -> int | None:
    """The local stack's Weaviate process (None when the stack was not started by `make up`)."""
    return stack_processes(LocalStack()).get("weaviate")


def rss_mib(pid: int | None) -> float | None:
    kib = tree_rss_kib(pid) if pid is not None else 0
    return round(kib / 1024, 1) if kib else None


async def run_growth(sizes: list[int], *, queries: int = 500, batch: int = 1000, fresh_samples: int = 20,
                     settings: WeaviateSettings | None = None) -> dict[str, Any]:
    """Every size with every compression, and the write floor: the bench's ``growth`` section."""
    settings = settings or WeaviateSettings()
    pid = weaviate_pid()
    rng = np.random.default_rng(13)
    rows = []
    async with connected(settings) as client:
        floor = await write_floor(client, rng, batch=batch)
        for compression in COMPRESSIONS:
            name = f"Growth{uuid.uuid4().hex[:8]}"
            coll = await create(client, name, compression)
            have = 0
            try:
                for size in sorted(sizes):
                    rate = await fill(coll, rng, size - have, have, batch)
                    have = size
                    lat = await query_latency(coll, unit_vectors(rng, queries))
                    fresh = await insert_to_searchable(coll, unit_vectors(rng, fresh_samples))
                    have += fresh_samples
                    rows.append({"objects": size, "compression": compression, "batch": batch,
                                 "fill_per_s": round(rate, 1), "queries": queries,
                                 "query_p50_ms": percentile(lat, 50), "query_p99_ms": percentile(lat, 99),
                                 "insert_to_searchable_p50_ms": percentile(fresh, 50),
                                 "insert_to_searchable_p99_ms": percentile(fresh, 99),
                                 "weaviate_rss_mib": rss_mib(pid)})
                    print(f"growth: {json.dumps(rows[-1])}", flush=True)
            finally:
                await client.collections.delete(name)
    return {"dim": DIM, "rows": rows, "write_floor": floor}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000", help="object counts, ascending (default 10k,100k,1M)")
    p.add_argument("--queries", type=int, default=500, help="queries per size (default 500)")
    p.add_argument("--batch", type=int, default=1000, help="objects per insert_many call (default 1000)")
    p.add_argument("--out", type=Path, default=Path("bench/results/growth.json"),
                   help="where the JSON goes (default bench/results/growth.json)")
    args = p.parse_args(argv)
    out = asyncio.run(run_growth([int(s) for s in args.sizes.split(",")], queries=args.queries, batch=args.batch))
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **out}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
