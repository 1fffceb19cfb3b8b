"""`xmodal publish`: read a source, validate everything first, send with a progress bar, summarise, and with
``--wait`` block until the worker has stored what was just published (read-your-writes)."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers
    from schemas.asset_event import AssetEvent
    from services.config import KafkaSettings
    from services.publish import Published

CHUNK = 200  # events per publish_many call, and per step of the progress bar
SAMPLES = ("shapes", "scenes", "sounds")


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "publish", help="publish asset events from a JSONL file, a folder, or a built-in sample set",
        description="Validates every event first, then publishes them to the `assets` topic "
        "(XMODAL_KAFKA__TOPIC; key = asset_id). SOURCE is a JSONL file with one AssetEvent per line (see "
        "schemas/asset_event.schema.json) or a folder of images, audio clips and .txt/.md files (asset_id = path "
        "relative to the folder, metadata from a sidecar <file>.json; files over 700 KiB go as file:// URIs, which "
        "the worker reads only under XMODAL_FETCH__FILE_ROOTS).",
    )
    p.add_argument("source", nargs="?", type=Path, help="JSONL file or folder")
    p.add_argument("--sample", metavar="NAME", choices=SAMPLES,
                   help="publish a built-in sample set instead of SOURCE (shapes: 24 colour/shape classes, "
                   "--per-class images of each plus one caption each, 120 assets by default; scenes: 48 "
                   "classes of harder scenes (sizes, outlines, two things and their relation), --per-class "
                   "pictures of each plus the text of each class; sounds: 28 classes of sounds, --per-class "
                   "clips of each plus one caption each)")
    p.add_argument("--per-class", type=int, default=None,
                   help="items per class of --sample (default: 4 images per shape class, 3 pictures per scene "
                   "class, 3 clips per sound)")
    p.add_argument("--wait", action="store_true",
                   help="after publishing, wait until the worker has stored everything (read-your-writes); "
                   "exit 1 when --timeout passes first")
    p.add_argument("--timeout", type=float, default=120.0, help="longest --wait, seconds (default 120)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.config import WorkerSettings

    events = load_events(args.source, sample=args.sample, per_class=args.per_class)
    wait_timeout_s = args.timeout if args.wait else None
    return asyncio.run(publish_events(events, WorkerSettings().kafka, wait_timeout_s=wait_timeout_s))


def load_events(source: Path | None, *, sample: str | None = None, per_class: int | None = None) -> list[AssetEvent]:
    """The events of a sample set, a folder or a JSONL file, all validated; ConfigError says what is wrong."""
    from services.errors import ConfigError
    from services.publish.sources import from_folder, from_jsonl

    if sample == "shapes":
        from services.samples import shapes_sample

        return shapes_sample(per_class or 4)
    if sample == "scenes":
        from services.samples import scenes_sample

        return scenes_sample(per_class=per_class or 3)
    if sample == "sounds":
        from services.samples import sounds_sample

        return sounds_sample(per_class or 3)
    if source is None:
        raise ConfigError("give a SOURCE (JSONL file or folder) or --sample shapes|scenes|sounds; "
                          "see xmodal publish --help")
    if source.is_dir():
        return list(from_folder(source))
    if source.is_file():
        return list(from_jsonl(source))
    raise ConfigError(f"{source} does not exist")


async def publish_events(events: Sequence[AssetEvent], kafka: KafkaSettings, *,
                         wait_timeout_s: float | None = None) -> int:
    """Publish ``events`` and print a summary; with ``wait_timeout_s``, then wait until they are stored."""
    from tqdm import tqdm

    from services.errors import ConfigError
    from services.publish import EventPublisher

    if not events:
        raise ConfigError("nothing to publish: the source holds no events")
    t0 = time.perf_counter()
    sent: list[Published] = []
    async with EventPublisher(kafka) as pub:
        with tqdm(total=len(events), unit="event", desc=f"publishing to {kafka.topic}") as bar:
            for i in range(0, len(events), CHUNK):
                chunk = events[i:i + CHUNK]
                sent.extend(await pub.publish_many(chunk))
                bar.update(len(chunk))
    took = time.perf_counter() - t0
    kinds = Counter(f"{e.op.value} {e.modality.value if e.modality else ''}".strip() for e in events)
    parts = Counter(p.partition for p in sent)
    print(f"published {len(sent)} events in {took:.2f}s ({len(sent) / took:.0f}/s): "
          + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    print("partitions: " + ", ".join(f"{p}: {n}" for p, n in sorted(parts.items())))
    if wait_timeout_s is not None:
        return await wait_for_offsets(sent, kafka, timeout_s=wait_timeout_s)
    return 0


def targets_of(published: Sequence[Published]) -> dict[int, int]:
    """The highest offset per partition: committed past it means everything before is stored too.

    >>> from services.publish import Published
    >>> targets_of([Published("a", 0, 5), Published("b", 0, 9), Published("c", 1, 2)])
    {0: 9, 1: 2}
    """
    out: dict[int, int] = {}
    for p in published:
        out[p.partition] = max(out.get(p.partition, -1), p.offset)
    return out


async def wait_for_offsets(published: Sequence[Published], kafka: KafkaSettings, *, timeout_s: float) -> int:
    """0 once the worker group has committed past every published offset, 1 when ``timeout_s`` passes first."""
    from services.monitoring.lag import LagReader

    async with LagReader(kafka) as reader:
        ok, waited = await reader.wait_committed(targets_of(published), timeout_s=timeout_s)
    if ok:
        print(f"stored: all {len(published)} events are searchable (waited {waited:.2f}s)")
        return 0
    print(f"not yet stored after {waited:.1f}s: is a worker running? (xmodal worker; xmodal lag)")
    return 1
