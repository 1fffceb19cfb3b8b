"""`xmodal publish`: read a source, validate everything first, send with a progress bar, summarise."""

from __future__ import annotations

import argparse
import time
from collections import Counter

from tqdm import tqdm

from schemas.asset_event import AssetEvent
from services.config import KafkaSettings
from services.errors import ConfigError
from services.publish import EventPublisher, Published
from services.publish.sources import from_folder, from_jsonl, shapes_sample

CHUNK = 200


def load_events(args: argparse.Namespace) -> list[AssetEvent]:
    if args.sample == "shapes":
        return shapes_sample(args.per_class)
    if args.source is None:
        raise ConfigError("give a SOURCE (JSONL file or folder) or --sample shapes; see xmodal publish --help")
    if args.source.is_dir():
        return list(from_folder(args.source))
    if args.source.is_file():
        return list(from_jsonl(args.source))
    raise ConfigError(f"{args.source} does not exist")


async def publish_source(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    events = load_events(args)
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
    if args.wait:
        from streams.consistency import wait_for_offsets

        return await wait_for_offsets(sent, kafka, timeout_s=args.timeout)
    return 0
