"""`xmodal publish`: validate a source first, then send it in acknowledged chunks with a progress bar and a
checkpoint (a rerun resumes), optionally paced (``--rate``), summarise, and with ``--wait`` block until the
worker has stored what was published (read-your-writes)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers
    from schemas.asset_event import AssetEvent
    from services.config import KafkaSettings
    from services.publish import Published
    from services.publish.backfill import Tally
    from services.publish.checkpoint import Checkpoint, CheckpointFile
    from services.publish.sources import Fingerprint, Source

CHUNK = 200  # events per publish_many call when unpaced (paced: a tenth of a second's worth)
SAMPLES = ("shapes", "scenes", "sounds", "clips")
LARGE = 10_000  # events: a source this large without --rate gets a word about live traffic


EPILOG = """\
a large SOURCE (100,000 events): read twice, never held in memory
  1. validate: every event is parsed and checked (a bad one, or one too large for Kafka, stops the run
     with its line or file, before anything is sent); only a count is kept
  2. send: in chunks, each acknowledged by Kafka (acks=all, idempotent producer) before the next, with a
     progress bar (events/s, ETA) and a summary (events, seconds, events/s, dead on arrival: 0, since a
     refused event stops step 1 and a refusal by Kafka stops step 2 at its last acknowledged chunk)

resuming: after every acknowledged chunk a checkpoint records how many events of SOURCE Kafka holds
  (default one file per source, Kafka, topic and --tenant under ~/.local/state/xmodal/publish, beside
  XMODAL_STATE_DIR; --checkpoint PATH). A rerun after a crash or Ctrl-C says "resuming at event 41,200 of
  100,000" and goes on from there without validating again. The chunk in flight at the crash is sent again:
  harmless, since events are keyed by asset_id and the pipeline's writes are idempotent (an event applied
  twice in order leaves what it leaves once). A finished SOURCE is complete (exit 0); one whose size or
  mtime changed since is refused; --restart publishes it from its first event.

backfill beside live traffic: --rate N holds a backfill below the worker's capacity, so that live events
  on the same topic keep their freshness. One topic on purpose: it keeps each asset's events in order on one
  partition (a live update and a backfill event of the same asset are applied in the order they reach
  Kafka) and needs no change in the worker, and live freshness then depends on the headroom the worker has.
  A second, lower-priority topic would need the consumer to prefer one topic over the other, which Faust
  does not offer. Pick N at a quarter to a half of the worker's throughput (`xmodal lag` shows its consume
  rate): measured by bench/backfill.py on a 2-core machine, live freshness p99 was about 110 ms beside a
  backfill at a quarter, 0.4-0.6 s at a half, and 15 s beside an unpaced one (38 ms with no backfill).

examples:
  ./xmodal publish events.jsonl
  ./xmodal publish catalogue.jsonl --rate 200      # a backfill beside live traffic
  ./xmodal publish ./catalogue/ --wait             # then wait until the worker stored it all
  ./xmodal publish --sample shapes
  ./xmodal publish ./acme-catalogue/ --tenant acme  # a multi-tenant deployment: every event into tenant acme
"""


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "publish", help="publish asset events from a JSONL file, a folder, or a built-in sample set",
        description="Publishes asset events to the `assets` topic (XMODAL_KAFKA__TOPIC; key = asset_id).\n"
        "SOURCE is a JSONL file with one AssetEvent per line (see schemas/asset_event.schema.json) or a\n"
        "folder of images, audio clips and .txt/.md files (asset_id = path relative to the folder, metadata\n"
        "from a sidecar <file>.json; files over 700 KiB go as file:// URIs, which the worker reads only\n"
        "under XMODAL_FETCH__FILE_ROOTS). It is validated whole before anything is sent, sent in chunks\n"
        "Kafka acknowledges, and resumable.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", nargs="?", type=Path, help="JSONL file or folder")
    p.add_argument("--sample", metavar="NAME", choices=SAMPLES,
                   help="publish a built-in sample set instead of SOURCE (shapes: 24 colour/shape classes, "
                   "--per-class images of each plus one caption each, 120 assets by default; scenes: 48 "
                   "classes of harder scenes (sizes, outlines, two things and their relation), --per-class "
                   "pictures of each plus the text of each class; sounds: 28 classes of sounds, --per-class "
                   "clips of each plus one caption each; clips: 6 short videos of a moving shape that changes "
                   "colour, with a tone that changes with it)")
    p.add_argument("--per-class", type=int, default=None,
                   help="items per class of --sample (default: 4 images per shape class, 3 pictures per scene "
                   "class, 3 clips per sound)")
    p.add_argument("--tenant", metavar="NAME", default=None,
                   help="publish every event into tenant NAME (a multi-tenant deployment, XMODAL_WEAVIATE__"
                   "MULTI_TENANCY=true): set on events that name none; an event naming another tenant is an error")
    p.add_argument("--rate", type=float, default=0.0, metavar="N",
                   help="at most N events/s over time (a token bucket: chunks of a tenth of a second's worth, "
                   "bursts of at most half a second's worth); 0, the default, is unlimited, right for a small "
                   "source or an idle worker")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                   help="the checkpoint file of SOURCE (default: one per source, Kafka and topic under "
                   "~/.local/state/xmodal/publish, XMODAL_STATE_DIR's parent)")
    p.add_argument("--restart", action="store_true",
                   help="ignore the checkpoint and publish SOURCE from its first event")
    p.add_argument("--wait", action="store_true",
                   help="after publishing, wait until the worker has stored everything (read-your-writes); "
                   "exit 1 when --timeout passes first")
    p.add_argument("--timeout", type=float, default=120.0, help="longest --wait, seconds (default 120)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from schemas.asset_event import TENANT
    from services.config import WorkerSettings
    from services.errors import ConfigError

    if args.rate < 0:
        raise ConfigError(f"--rate is events per second, 0 (unlimited) or more, not {args.rate}")
    if args.tenant is not None and not TENANT.match(args.tenant):
        raise ConfigError(f"--tenant {args.tenant!r}: a tenant name is 1-64 letters, digits, '_' or '-'")
    kafka = WorkerSettings().kafka
    wait_timeout_s = args.timeout if args.wait else None
    if args.sample is not None:
        if args.checkpoint is not None or args.restart:
            raise ConfigError("--checkpoint and --restart are for a SOURCE; a --sample set is published whole")
        events = sample_events(args.sample, per_class=args.per_class)
        if args.tenant is not None:
            from services.publish.sources import with_tenant

            events = [with_tenant(e, args.tenant, f"--sample {args.sample}") for e in events]
        return asyncio.run(publish_events(events, kafka, wait_timeout_s=wait_timeout_s, rate=args.rate))
    if args.source is None:
        raise ConfigError("give a SOURCE (JSONL file or folder) or --sample shapes|scenes|sounds|clips; "
                          "see xmodal publish --help")
    return publish_source(args.source, kafka, checkpoint=args.checkpoint, restart=args.restart, rate=args.rate,
                          wait_timeout_s=wait_timeout_s, tenant=args.tenant)


def sample_events(sample: str, *, per_class: int | None = None) -> list[AssetEvent]:
    """The events of a built-in sample set (small: they are held in memory)."""
    if sample == "shapes":
        from services.samples import shapes_sample

        return shapes_sample(per_class or 4)
    if sample == "scenes":
        from services.samples import scenes_sample

        return scenes_sample(per_class=per_class or 3)
    if sample == "clips":
        from services.video_samples import clips_sample

        return clips_sample()
    from services.samples import sounds_sample

    return sounds_sample(per_class or 3)


def checkpoint_file(source: Path, kafka: KafkaSettings, given: Path | None, tenant: str | None = None
                    ) -> CheckpointFile:
    from services.config import StackSettings
    from services.publish.checkpoint import CheckpointFile, default_path

    return CheckpointFile(given or default_path(StackSettings().state_dir.parent / "publish", source, kafka, tenant))


def publish_source(path: Path, kafka: KafkaSettings, *, checkpoint: Path | None = None, restart: bool = False,
                   rate: float = 0.0, wait_timeout_s: float | None = None, tenant: str | None = None) -> int:
    """Validate (unless resuming), then publish SOURCE from its checkpoint; Ctrl-C leaves a resumable one."""
    from services.publish.checkpoint import Complete, Resume, plan
    from services.publish.sources import open_source

    source = open_source(path, tenant=tenant)
    fingerprint = source.fingerprint()  # before the first pass: what is validated is at least this new
    file = checkpoint_file(path, kafka, checkpoint, tenant)
    match plan(file.load(), source=path, kafka=kafka, fingerprint=fingerprint, restart=restart,
               checkpoint_path=file.path, tenant=tenant):
        case Complete(saved=done):
            print(f"{path} is complete: all {done.total:,} events were acknowledged by {done.topic} (checkpoint "
                  f"{file.path}, {done.updated_at:%Y-%m-%d %H:%M:%S} UTC); --restart publishes it again")
            if wait_timeout_s is None:
                return 0
            return asyncio.run(wait_for_offsets(done.offsets, kafka, timeout_s=wait_timeout_s, events=done.total))
        case Resume(saved=start):
            print(f"resuming at event {start.acked:,} of {start.total:,} (checkpoint {file.path}); --restart to "
                  "start over. The chunk that was in flight is sent again, which is harmless: events are idempotent.")
        case fresh:
            start = _validated(source, fingerprint, kafka, file, restarted=fresh.restarted, tenant=tenant)
    if rate == 0 and start.total - start.acked >= LARGE:
        print(f"note: {start.total - start.acked:,} events without --rate may take the worker's whole capacity, and "
              "live events on the topic then wait behind them; --rate N (a quarter to a half of the consume rate "
              "`xmodal lag` shows) leaves them room")
    try:
        return asyncio.run(_send_source(source, start, file, kafka, rate=rate, wait_timeout_s=wait_timeout_s))
    except KeyboardInterrupt:
        now = file.load() or start
        print(f"\ninterrupted: {now.acked:,} of {now.total:,} events acknowledged (checkpoint {file.path}); the "
              "same command resumes there", file=sys.stderr)
        return 130


def _validated(source: Source, fingerprint: Fingerprint, kafka: KafkaSettings, file: CheckpointFile, *,
               restarted: bool, tenant: str | None = None) -> Checkpoint:
    """Validate every event of ``source`` (keeping none), then write a checkpoint at event 0."""
    from tqdm import tqdm

    from services.errors import ConfigError
    from services.publish.checkpoint import new_checkpoint

    with tqdm(unit=" events", desc=f"validating {source.path.name}", leave=False) as bar:
        total = source.validate(bar.update)
    if total == 0:
        raise ConfigError("nothing to publish: the source holds no events")
    print(f"validated {total:,} events of {source.path}" + (" (--restart: from the first event)" if restarted else ""))
    first = new_checkpoint(source.path, kafka, fingerprint, total, tenant)
    file.save(first)
    return first


async def _send_source(source: Source, start: Checkpoint, file: CheckpointFile, kafka: KafkaSettings, *,
                       rate: float, wait_timeout_s: float | None) -> int:
    from tqdm import tqdm

    from services.publish import EventPublisher
    from services.publish.backfill import send_in_chunks
    from services.publish.ratelimit import chunk_size, pacer_for

    now = start

    def acked(events: Sequence[AssetEvent], published: Sequence[Published]) -> None:
        nonlocal now
        now = now.advanced(published)
        file.save(now)
        bar.update(len(published))

    async with EventPublisher(kafka) as pub:
        t0 = time.perf_counter()
        with tqdm(total=start.total, initial=start.acked, unit=" events", desc=f"publishing to {kafka.topic}") as bar:
            tally = await send_in_chunks(pub, source.events(start.acked), pacer=pacer_for(rate),
                                         chunk=chunk_size(rate, largest=CHUNK), on_acked=acked)
        took = time.perf_counter() - t0
    if now.state != "done":  # the source lost events between the passes
        from services.errors import ConfigError

        raise ConfigError(f"{source.path} ended after {now.acked:,} of the {now.total:,} events counted: did it "
                          f"change? (checkpoint {file.path}; --restart publishes it again)")
    span = f" (resumed at event {start.acked:,} of {now.total:,})" if start.acked else ""
    summarise(tally, took, span=span)
    print(f"checkpoint: done ({file.path})")
    if wait_timeout_s is not None:
        return await wait_for_offsets(now.offsets, kafka, timeout_s=wait_timeout_s, events=now.total)
    return 0


def summarise(tally: Tally, took: float, *, span: str = "") -> None:
    """The closing lines: events, seconds, events/s and dead on arrival, by kind; then by partition.

    Dead on arrival counts events that never reached the topic: every event is validated (its size too) before
    the first is sent, and a refusal by Kafka stops the run at its last acknowledged chunk, so a finished run
    says 0.
    """
    rate = tally.events / took if took > 0 else 0.0
    print(f"published {tally.events:,} events{span} in {took:.1f}s ({rate:,.0f} events/s), 0 dead on arrival: "
          + ", ".join(f"{n:,} {k}" for k, n in sorted(tally.kinds.items())))
    print("partitions: " + ", ".join(f"{p}: {n:,}" for p, n in sorted(tally.partitions.items())))


async def publish_events(events: Sequence[AssetEvent], kafka: KafkaSettings, *,
                         wait_timeout_s: float | None = None, rate: float = 0.0) -> int:
    """Publish ``events`` (a sample set: held in memory, no checkpoint) and print a summary; with
    ``wait_timeout_s``, then wait until they are stored."""
    from tqdm import tqdm

    from services.errors import ConfigError
    from services.publish import EventPublisher
    from services.publish.backfill import send_in_chunks
    from services.publish.ratelimit import chunk_size, pacer_for

    if not events:
        raise ConfigError("nothing to publish: the source holds no events")
    async with EventPublisher(kafka) as pub:
        t0 = time.perf_counter()
        with tqdm(total=len(events), unit=" events", desc=f"publishing to {kafka.topic}") as bar:
            tally = await send_in_chunks(pub, events, pacer=pacer_for(rate), chunk=chunk_size(rate, largest=CHUNK),
                                         on_acked=lambda _, published: bar.update(len(published)))
        took = time.perf_counter() - t0
    summarise(tally, took)
    if wait_timeout_s is not None:
        return await wait_for_offsets(tally.targets, kafka, timeout_s=wait_timeout_s, events=tally.events)
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


async def wait_for_offsets(targets: dict[int, int], kafka: KafkaSettings, *, timeout_s: float, events: int) -> int:
    """0 once the worker group has committed past every offset of ``targets``, 1 when ``timeout_s`` passes first."""
    from services.monitoring.lag import LagReader

    async with LagReader(kafka) as reader:
        ok, waited = await reader.wait_committed(targets, timeout_s=timeout_s)
    if ok:
        print(f"stored: all {events:,} events are searchable (waited {waited:.2f}s)")
        return 0
    print(f"not yet stored after {waited:.1f}s: is a worker running? (xmodal worker; xmodal lag)")
    return 1
