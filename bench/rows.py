"""The rows of `make bench`'s table, from the figures bench.run gathered (pure: tested on a made-up run)."""

from __future__ import annotations

from typing import Any

from bench.report import Row, fmt_ms, fmt_ratio, ratio, verdict

#: Freshness p99 targets (ms) by run label, from the performance issue.
FRESHNESS_P99_TARGET_MS = {"fixed": 150.0, "50% of max": 150.0, "80% of max": 500.0}


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}/s"


def _mib(rss: dict[str, Any] | None) -> str:
    return "-" if not rss else f"{rss['peak_rss_mib']:,.0f} MiB"


def _pair(p50: float | None, p99: float | None) -> str:
    return f"{fmt_ms(p50).removesuffix(' ms')} / {fmt_ms(p99)}"


def ingest_rows(out: dict[str, Any]) -> list[Row]:
    base, thr, naive = out["baseline_sink"], out["worker_throughput"], out.get("naive_loop")
    vs_base = ratio(thr["events_per_s"], base["events_per_s"])
    rows = [
        Row("baseline sink (vectors given, no model)", _rate(base["events_per_s"]), f"{base['events']} events"),
        Row("xmodal worker, 50% images 50% texts", _rate(thr["events_per_s"]),
            f"{thr['events']} events, {thr['batches']} batches"),
        Row("  worker / baseline", fmt_ratio(vs_base), f"target >= 0.85x: {verdict(vs_base, 0.85)}"),
    ]
    same = out.get("baseline_sink_same_vectors")
    if same:  # like for like: Weaviate's cost is mostly one HNSW insert per vector
        rows += [
            Row("baseline sink, the worker's vectors (texts in every text space)", _rate(same["events_per_s"]),
                f"{same['events']} events, {same['vectors_per_event']:g} vectors per event "
                f"(the baseline above: {base.get('vectors_per_event', 1):g})"),
            Row("  worker / that sink", fmt_ratio(ratio(thr["events_per_s"], same["events_per_s"])),
                "same vectors written; the gap is the worker's own parsing, decoding and embedding"),
        ]
    if naive:
        vs_naive = ratio(thr["events_per_s"], naive["events_per_s"])
        rows += [
            Row("naive loop (embed one, insert one, repeat)", _rate(naive["events_per_s"]),
                f"first {naive['events']} of the same events, same models"),
            Row("  worker / naive", fmt_ratio(vs_naive), f"target >= 10x: {verdict(vs_naive, 10.0)}"),
        ]
    for label, run in (("baseline sink", base), ("sink, the worker's vectors", same or {}), ("worker", thr)):
        if cpu := run.get("cpu_ms_per_1k_events"):
            rows.append(Row(f"  CPU per 1k events, {label}", f"{cpu['all']:,.0f} ms",
                            ", ".join(f"{name} {ms:,.0f}" for name, ms in cpu.items() if name != "all")
                            + " ms (user + system, per process)"))
    audio = out.get("worker_audio_throughput")
    if audio:
        rows.append(Row("xmodal worker, audio clips (decode, preview, embed)", _rate(audio["events_per_s"]),
                        f"{audio['events']} clips of 1-2 s, {audio['batches']} batches"))
    video = out.get("worker_video_throughput")
    if video:
        rows.append(Row("xmodal worker, videos (decode, segment, embed keyframes and sound)",
                        f"{video['events_per_s']:,.1f} clips/s",
                        f"{video['events']} clips of 4 s with sound, {video['segments_per_s']:,.1f} segments/s "
                        f"({video['segments']} segments), {video['batches']} batches"))
    return rows


def freshness_rows(out: dict[str, Any]) -> list[Row]:
    rows = []
    fresh = out.get("freshness") or {"runs": []}
    for run in fresh["runs"]:
        target = FRESHNESS_P99_TARGET_MS.get(run["label"])
        where = f"{run['rate']:.0f}/s" if run["label"] == "fixed" else f"{run['rate']:.0f}/s = {run['label']}"
        note = f"offered {run['offered_per_s']:.0f}/s"
        if target is not None:
            note += f"; p99 target <= {target:.0f} ms: {verdict(run['freshness_p99_ms'], target, at_most=True)}"
        if run.get("batch_mean_events") is not None:
            note += f"; mean batch {run['batch_mean_events']:g} events"
        rows.append(Row(f"freshness p50 / p99 at {where}", _pair(run["freshness_p50_ms"], run["freshness_p99_ms"]),
                        note))
        stages = run.get("stage_mean_ms") or {}
        if stages:  # where a batch's time went at this rate: the stages that freshness is made of
            shown = [s for s in ("queue_wait", "lookup", "fetch", "embed", "upsert", "commit", "total") if s in stages]
            rows.append(Row(f"  mean batch time at {run['rate']:.0f}/s", f"{stages.get('total', float('nan')):,.0f} ms",
                            ", ".join(f"{s} {stages[s]:.0f}" for s in shown if s != "total")
                            + " ms (queue_wait: the oldest event's wait before its batch began)"))
    if fresh["runs"]:
        first = fresh["runs"][0]
        rows.append(Row(f"publish -> committed p50 / p99 at {first['rate']:.0f}/s",
                        _pair(first["publish_to_committed_p50_ms"], first["publish_to_committed_p99_ms"]),
                        "read-your-writes wait"))
    return rows


def gateway_rows(out: dict[str, Any]) -> list[Row]:
    gw = out.get("gateway")
    if not gw:
        return []
    target = gw["plan"]["target_ms"]
    unloaded = gw["unloaded"]
    rows = [Row("gateway text->image unloaded p50 / p99", _pair(unloaded["ok_p50_ms"], unloaded["ok_p99_ms"]),
                f"{unloaded['rate']:.0f}/s, worker ingesting {gw['ingest_rate']:.0f}/s")]
    for p in gw.get("fixed", []):
        fixed = "fixed" in p["name"]
        note = (f"offered {p['rate']:.0f}/s; 429 {p['rejected_429']}, 5xx {p['errors_5xx']}; "
                f"p99 <= {target:.0f} ms: {verdict(p['ok_p99_ms'], target, at_most=True)}") if fixed else \
            f"{p['rate']:.0f}/s"
        label = p["name"].replace(" fixed", f" at {p['rate']:.0f}/s")
        rows.append(Row(f"gateway {label} p50 / p99", _pair(p["ok_p50_ms"], p["ok_p99_ms"]), note))
    rows.append(Row(f"gateway capacity, p99 <= {target:.0f} ms", _rate(gw["capacity_at_target_per_s"]),
                    "highest text->image rate served within the target"))
    rows.append(Row("gateway saturation capacity", _rate(gw["capacity_per_s"]),
                    f"p99 <= {gw['threshold_ms']:.0f} ms and < 1% 429s"))
    over = gw["overload"]
    share = over["rejected_share"]
    rows.append(Row(f"gateway at 2x capacity ({over['rate']:.0f}/s): 429 share", f"{share:.0%}",
                    f"5xx {over['errors_5xx']}, no answer {over['client_errors']}; target 429s and no 5xx: "
                    f"{'met' if share > 0 and not over['errors_5xx'] else 'not met'}"))
    vs_unloaded = ratio(over["ok_p99_ms"], unloaded["ok_p99_ms"])
    rows.append(Row("  admitted p99 / unloaded p99", fmt_ratio(vs_unloaded),
                    f"{fmt_ms(over['ok_p99_ms'])} vs {fmt_ms(unloaded['ok_p99_ms'])}; target <= 2x: "
                    f"{verdict(vs_unloaded, 2.0, at_most=True)}"))
    return rows


def memory_rows(out: dict[str, Any]) -> list[Row]:
    worker = [r for r in (out["worker_throughput"].get("rss"), (out.get("freshness") or {}).get("rss")) if r]
    peak = max(worker, key=lambda r: r["peak_rss_mib"]) if worker else None
    rows = [Row("peak RSS, worker", _mib(peak), "throughput and freshness runs, process tree")]
    gw = out.get("gateway")
    if gw:
        rows.append(Row("peak RSS, gateway", _mib(gw["gateway_rss"]), "during the gateway runs"))
    return rows


def growth_rows(out: dict[str, Any]) -> list[Row]:
    rows = []
    for g in out.get("growth", {}).get("rows", []):
        rows.append(Row(f"growth {g['objects']:,} objects, {g['compression']}: query p50 / p99",
                        _pair(g["query_p50_ms"], g["query_p99_ms"]),
                        f"insert -> searchable p99 {fmt_ms(g['insert_to_searchable_p99_ms'])}; "
                        f"fill {g['fill_per_s']:,.0f}/s in batches of {g['batch']}"
                        + (f"; Weaviate RSS {g['weaviate_rss_mib']:,.0f} MiB" if g.get("weaviate_rss_mib") else "")))
    floor = out.get("growth", {}).get("write_floor")
    if floor:
        rows.append(Row("Weaviate writes at 512-d, one object per call", _rate(floor["one_per_call_per_s"]),
                        f"batches of {floor['batch']}: {floor['batched_per_s']:,.0f}/s "
                        f"({fmt_ratio(ratio(floor['batched_per_s'], floor['one_per_call_per_s']))})"))
    return rows


def ratios(out: dict[str, Any]) -> dict[str, float | None]:
    """The run's headline ratios (for latest.json's ``ratios``)."""
    thr = out["worker_throughput"]["events_per_s"]
    gw = out.get("gateway")
    return {
        "worker_vs_baseline": ratio(thr, out["baseline_sink"]["events_per_s"]),
        "worker_vs_same_vector_sink": ratio(thr, (out.get("baseline_sink_same_vectors") or {}).get("events_per_s")),
        "worker_vs_naive": ratio(thr, (out.get("naive_loop") or {}).get("events_per_s")),
        "overload_p99_vs_unloaded_p99": ratio(gw["overload"]["ok_p99_ms"], gw["unloaded"]["ok_p99_ms"]) if gw else None,
    }


def build_rows(out: dict[str, Any]) -> list[Row]:
    return [*ingest_rows(out), *freshness_rows(out), *gateway_rows(out), *memory_rows(out), *growth_rows(out)]
