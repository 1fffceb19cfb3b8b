"""Every metric xmodal exports, in one place, so dashboards and code agree on names.

Worker metrics are served by the worker's web server (port 6066) at /metrics, gateway metrics by the gateway.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FRESH = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# queue_wait (Kafka timestamp to batch start) grows to minutes while a backlog drains: keep those visible
_STAGE = (*_FAST, 30.0, 60.0, 300.0)
_CLIP = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

# --- worker: ingest pipeline -------------------------------------------------------------------
EVENTS = Counter(
    "xmodal_events_total", "Events consumed, by outcome.", ["outcome"]
)  # outcome: stored, deleted, metadata_only, stale, superseded, dead_letter
DEAD_LETTERS = Counter("xmodal_dead_letters_total", "Events sent to the dead-letter topic, by reason.", ["reason"])
MODEL_RUNS = Counter(
    "xmodal_model_inputs_total", "Inputs that ran through a model, by modality (once per space: a text in clip and "
    "clap counts twice; an image's caption counts as a text).", ["modality"]
)
BATCH_SIZE = Histogram("xmodal_batch_size", "Events per micro-batch taken from Kafka.", buckets=_SIZES)
STAGE_SECONDS = Histogram(
    "xmodal_stage_seconds", "Time spent per batch in each pipeline stage.", ["stage"], buckets=_STAGE
)  # stage: queue_wait (oldest record's Kafka timestamp to batch start), lookup, fetch, embed, upsert, dead_letter,
#   total
FRESHNESS = Histogram(
    "xmodal_freshness_seconds", "indexed_at minus the Kafka record timestamp, per stored event.", buckets=_FRESH
)
RETRIES = Counter(
    "xmodal_worker_retries_total", "Retries of a batch step after a transient failure, by cause.", ["cause"]
)  # cause: store_unreachable, store_timeout, store_overloaded, store_error, dead_letter, overloaded, transient
PAUSED = Gauge(
    "xmodal_worker_paused", "1 while the worker is paused after a transient failure (it retries the batch in hand "
    "with backoff and takes nothing more until the step succeeds; Faust fetches until its bounded buffer is full)."
)
SKIPPED_OFFSETS = Counter(
    "xmodal_consumer_skipped_offsets_total", "Offsets between two records taken in a row from a partition that "
    "never reached the worker (lost events, unless the topic is compacted or transactional); 0 in a healthy run.",
    ["topic", "partition"],
)
PAUSES = Counter("xmodal_worker_pauses_total", "Times the worker paused consumption, by cause.", ["cause"])
PAUSE_CAUSE = Gauge(
    "xmodal_worker_pause_cause", "1 for the cause of the newest transient failure while the worker is paused, "
    "0 for the others and when it is not paused (alert on it, or read it beside xmodal_worker_paused).", ["cause"]
)
# audio decoding (services.fetch.audio), wherever it runs: worker or gateway
AUDIO_DECODE_SECONDS = Histogram(
    "xmodal_audio_decode_seconds", "Time to decode one audio file (read, mix down, resample), by outcome.",
    ["outcome"], buckets=_FAST,
)  # outcome: ok, too_large, undecodable, error (an unexpected exception)
AUDIO_CLIP_SECONDS = Histogram("xmodal_audio_clip_seconds", "Duration of decoded audio clips.", buckets=_CLIP)
VIDEO_DECODE_SECONDS = Histogram(
    "xmodal_video_decode_seconds", "Time to decode one video (demux, decode, cut into segments), by outcome.",
    ["outcome"], buckets=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0),
)  # outcome: ok, too_large, undecodable, error (an unexpected exception)
VIDEO_SEGMENTS = Histogram("xmodal_video_segments", "Segments (keyframes) per decoded video.",
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128))
# GPU figures, exported only while a GPU runs the model (services.monitoring.gpu)
GPU_MEMORY = Gauge(
    "xmodal_gpu_memory_bytes",
    "GPU memory by kind: allocated (tensors), reserved (torch's cache), used (whole device), total.",
    ["device", "kind"],
)
GPU_UTILIZATION = Gauge(
    "xmodal_gpu_utilization_ratio", "Share of the last sample period the GPU was busy (0..1; needs NVML).", ["device"]
)

# --- stream lag (worker and gateway both export it) ---------------------------------------------
LAG = Gauge("xmodal_consumer_lag", "End offset minus committed offset, per partition.", ["topic", "partition"])
END_OFFSET = Gauge("xmodal_end_offset", "Log end offset per partition.", ["topic", "partition"])
COMMITTED_OFFSET = Gauge(
    "xmodal_committed_offset",
    "Committed offset of the worker group per partition (the log start before its first commit).",
    ["topic", "partition"],
)
GROUP_MEMBERS = Gauge("xmodal_consumer_group_members", "Members of the worker group (consuming workers).", ["group"])
CONSUME_RATE = Gauge(
    "xmodal_consume_rate", "Events per second the worker group committed, over the recent window.", ["topic"]
)
DRAIN_SECONDS = Gauge(
    "xmodal_lag_drain_seconds", "Estimated seconds to drain the lag at the recent consume rate (+Inf: not "
    "consuming).", ["topic"]
)
LAG_READ_ERRORS = Counter("xmodal_lag_read_errors_total", "Failed reads of the group's lag from Kafka.")

# --- gateway -----------------------------------------------------------------------------------
REQUESTS = Counter("xmodal_http_requests_total", "Gateway requests, by route and status.", ["route", "status"])
REQUEST_SECONDS = Histogram("xmodal_http_request_seconds", "Gateway latency by route.", ["route"], buckets=_FAST)
# query embedding (services.gateway.encoder): modality is text or image
QUERY_CACHE = Counter("xmodal_query_cache_total", "Text-query embedding cache lookups, by result.", ["result"])
QUERY_QUEUE_DEPTH = Gauge(
    "xmodal_query_queue_depth", "Queries queued for the model and not yet in a batch.", ["modality"]
)
QUERY_BATCH_SIZE = Histogram(
    "xmodal_query_batch_size", "Queries per model call of the query batcher.", ["modality"], buckets=_SIZES
)
QUERY_QUEUE_SECONDS = Histogram(
    "xmodal_query_queue_seconds", "Time each query waited in the batcher's queue before its batch ran.",
    ["modality"], buckets=_FAST,
)
QUERY_INFERENCE_SECONDS = Histogram(
    "xmodal_query_inference_seconds", "Model time per query batch (on the device's inference thread).",
    ["modality"], buckets=_FAST,
)
QUERY_FAILURES = Counter(
    "xmodal_query_failures_total", "Query embeddings that failed, by cause.", ["cause"]
)  # cause: overloaded (queue full: 429), model_error (the model raised), timeout (request deadline passed)
REJECTED = Counter("xmodal_http_rejected_total", "Requests refused before work, by reason.", ["reason"])
CONSISTENCY_WAIT = Histogram(
    "xmodal_consistency_wait_seconds", "Time searches waited for consistent_with offsets.", buckets=_FAST
)

# --- gateway: re-ranking (services.gateway.rerank) --------------------------------------------------------
RERANK_SECONDS = Histogram(
    "xmodal_rerank_seconds", "Time of each re-ranking (content reads + model), degraded ones included.",
    buckets=_FAST,
)
RERANK_CANDIDATES = Histogram(
    "xmodal_rerank_candidates", "Candidates re-scored per re-ranking.", buckets=_SIZES
)
RERANK_DEGRADED = Counter(
    "xmodal_rerank_degraded_total", "Re-rankings answered in retrieval order, by reason.", ["reason"]
)  # reason: timeout (past budget_s), error (the reranker raised), unsupported (a query or window it cannot read)
RERANK_CACHE = Counter(
    "xmodal_rerank_cache_total", "Candidate vector cache lookups of the bi-encoder reranker, by result.", ["result"]
)

# --- gateway: golden queries (services.gateway.golden runs them on a schedule) ----------------------------
GOLDEN_PASS_RATIO = Gauge(
    "xmodal_golden_pass_ratio", "Share of the golden queries that passed in the last run (0..1; NaN before "
    "the first run or without a golden file). Alert on < 1."
)
GOLDEN_PASS_RATIO.set(float("nan"))  # not 0: a gateway that has not checked yet is not failing
GOLDEN_QUERY_OK = Gauge(
    "xmodal_golden_query_ok", "1 when this golden query passed in the last run, 0 when it failed.", ["name"]
)
GOLDEN_RUNS = Counter("xmodal_golden_runs_total", "Runs of the golden queries.")
GOLDEN_LAST_RUN = Gauge(
    "xmodal_golden_last_run_timestamp", "Unix time the last run of the golden queries finished (0: never)."
)
