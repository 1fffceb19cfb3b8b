"""Settings: one pydantic-settings class per deployable (worker, gateway, local stack).

Every field is also an environment variable: prefix ``XMODAL_``, nested with ``__``, e.g.
``XMODAL_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or ``XMODAL_SPACES__CLIP__NAME=openai/clip-vit-base-patch32``.
The sections (kafka, weaviate, model, fetch) are shared, so one variable configures every deployable.
os.environ is read nowhere else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.asset_event import TENANT as TENANT_NAME

_ENV = SettingsConfigDict(env_prefix="XMODAL_", env_nested_delimiter="__", extra="ignore")

BUILTIN_MODEL = "builtin:shapes-clip"
BUILTIN_LARGE_MODEL = "builtin:shapes-clip-large"  # the shapes re-ranking model: same family, larger
BUILTIN_SOUNDS_MODEL = "builtin:sounds-clap"


#: A caption's named vector is its space's name plus this: an image's caption in space clip is ``clip_caption``.
CAPTION_SUFFIX = "_caption"
#: Modalities whose assets may carry a caption (schemas.asset_event.CAPTIONED).
CAPTIONED_MODALITIES = frozenset({"image", "audio"})


def caption_vector(space: str) -> str:
    """The named vector holding the captions embedded in ``space`` (its text tower).

    >>> caption_vector("clip"), caption_space("clip_caption"), caption_space("clip")
    ('clip_caption', 'clip', None)
    """
    return f"{space}{CAPTION_SUFFIX}"


def caption_space(vector: str) -> str | None:
    """The space of a caption vector; None when ``vector`` is a content vector (a space's own)."""
    return vector[: -len(CAPTION_SUFFIX)] if vector.endswith(CAPTION_SUFFIX) else None


#: A video's segment vectors in a space are one multi-vector named its space's name plus this: ``clip_segments``
#: holds one vector per keyframe (the image tower), ``clap_segments`` one per segment's sound.
SEGMENTS_SUFFIX = "_segments"


def segments_vector(space: str) -> str:
    """The multi-vector holding a video's segments embedded in ``space``.

    >>> segments_vector("clip"), segments_space("clip_segments"), segments_space("clip")
    ('clip_segments', 'clip', None)
    """
    return f"{space}{SEGMENTS_SUFFIX}"


def segments_space(vector: str) -> str | None:
    """The space of a segments vector; None for any other named vector."""
    return vector[: -len(SEGMENTS_SUFFIX)] if vector.endswith(SEGMENTS_SUFFIX) else None


def takes_video(modalities: frozenset[str] | set[str]) -> bool:
    """A space embeds videos' segments when its model embeds images (keyframes) or audio (their sound)."""
    return bool(modalities & {"image", "audio"})


def takes_captions(modalities: frozenset[str] | set[str]) -> bool:
    """A space embeds captions when its model embeds texts and a modality that may carry one."""
    return "text" in modalities and bool(modalities & CAPTIONED_MODALITIES)


def _xdg(var: str, default: str) -> Path:
    # Settings defaults may read the XDG base dirs: they are the user's choice of where caches live.
    return Path(os.environ.get(var) or Path.home() / default) / "xmodal"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    topic: str = Field("assets", description="Topic of asset events, keyed by asset_id.")
    dlq_topic: str = Field("assets.dlq", description="Topic of dead letters, keyed by the original key.")
    partitions: int = Field(
        4, ge=1, description="Partitions when xmodal creates the topics. More partitions = more workers."
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor when xmodal creates the topics.")
    group_id: str = Field("xmodal-worker", description="Consumer group (the Faust app id) of the workers.")


#: Weaviate's replica counts for a read or a write (weaviate.classes.config.ConsistencyLevel).
Consistency = Literal["ONE", "QUORUM", "ALL"]
#: Node i (1-based) of a local cluster listens on each base port + NODE_PORT_STRIDE * (i - 1).
NODE_PORT_STRIDE = 10


class WeaviateEndpoint(BaseModel):
    """One node of a Weaviate cluster, as the store reaches it; written ``host:http_port:grpc_port``."""

    model_config = ConfigDict(frozen=True)
    host: str = Field(description="Host of the node.")
    http_port: int = Field(description="REST port of the node.")
    grpc_port: int = Field(description="gRPC port of the node.")

    def __str__(self) -> str:
        return f"{self.host}:{self.http_port}:{self.grpc_port}"


def _endpoints(value: Any) -> Any:
    """``h:8090:50061,h:8100:50071`` (or a JSON list of such strings, or of objects) -> endpoints."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p.strip()]
    if not isinstance(value, list):
        return value
    return [_endpoint(item) if isinstance(item, str) else item for item in value]


def _endpoint(text: str) -> dict[str, str]:
    parts = text.strip().rsplit(":", 2)
    if len(parts) != 3:
        raise ValueError(f"Weaviate node {text!r}: expected host:http_port:grpc_port")
    return dict(zip(("host", "http_port", "grpc_port"), parts, strict=True))


WeaviateEndpoints = Annotated[list[WeaviateEndpoint], NoDecode, BeforeValidator(_endpoints)]


#: Vector compression of a space's HNSW index (Weaviate's quantizers): none, rotational (rq), product (pq),
#: binary (bq) or scalar (sq) quantization.
Compression = Literal["none", "rq", "pq", "bq", "sq"]


class VectorIndexSettings(BaseModel):
    """One space's HNSW index and its compression, as set when the space's named vector is created.

    The defaults are Weaviate's own (an index made before these settings existed has them). On start the
    store updates what Weaviate can change in place (ef, rescore_limit, compression from none to one) and
    refuses to start over what it cannot (ef_construction, max_connections, another or no compression once
    one is on, rq_bits, pq_segments, pq_centroids), saying what differs.
    """

    model_config = ConfigDict(extra="forbid")  # a misspelt knob fails instead of silently doing nothing
    ef: int = Field(
        -1, ge=-1, description="Candidates kept while searching: higher = better recall, slower queries. -1: "
        "dynamic (the limit x 8, kept within 100 and 500). Changed in place.",
    )
    ef_construction: int = Field(
        128, ge=4, description="Candidates kept while inserting: higher = a better graph, slower writes. Fixed "
        "when the space's vector is created.",
    )
    max_connections: int = Field(
        32, ge=4, le=2047, description="Graph edges per node (twice that on the bottom layer): higher = better "
        "recall and more memory. Fixed when the space's vector is created.",
    )
    compression: Compression = Field(
        "none", description="none (even where the server sets a DEFAULT_QUANTIZATION), rq (rotational: no training, "
        "compresses from the first vector; 8 bits keep recall, the usual choice), sq (scalar, 8 bits) or pq "
        "(product), both trained on stored vectors, or bq (binary, 1 bit: smallest, poorest recall). Can be "
        "turned on in place (the vectors already stored are compressed in the background); not switched or "
        "turned off. sq and pq set at creation start only on a server with ASYNC_INDEXING=true (Weaviate "
        "1.39 trains them from its indexing queue); without it turn them on in place once vectors are stored.",
    )
    rq_bits: Literal[8, 4, 1] = Field(
        8, description="Bits per dimension for rq: 8 (4x smaller than float32), 4 or 1. Fixed once on.",
    )
    rescore_limit: int | None = Field(
        None, ge=0, description="rq and sq: candidates re-scored with the full vectors, read from disk "
        "(more = better recall, slower). None: Weaviate's default (20; 512 for 1-bit rq). Changed in place.",
    )
    pq_segments: int = Field(
        0, ge=0, description="pq: segments per vector, a divisor of the dimension (fewer = smaller, lower "
        "recall). 0: Weaviate picks. Fixed once on.",
    )
    pq_centroids: int = Field(256, ge=2, le=256, description="pq: centroids per segment. Fixed once on.")
    training_limit: int = Field(
        100_000, ge=1, description="pq and sq: vectors the quantizer is trained on. Set at creation (with "
        "ASYNC_INDEXING), compression starts once the space holds that many; turned on in place, it trains on "
        "up to that many of the vectors stored.",
    )

    @model_validator(mode="after")
    def _knobs_of_the_compression(self) -> VectorIndexSettings:
        if self.ef == 0:
            raise ValueError("ef must be -1 (dynamic) or at least 1")
        defaults = VectorIndexSettings.model_fields
        knobs = {"rq_bits": ("rq",), "rescore_limit": ("rq", "sq"), "pq_segments": ("pq",),
                 "pq_centroids": ("pq",), "training_limit": ("pq", "sq")}
        for knob, kinds in knobs.items():
            if self.compression not in kinds and getattr(self, knob) != defaults[knob].default:
                raise ValueError(f"{knob} applies to compression {' or '.join(kinds)}, not "
                                 f"{self.compression!r}: set compression or leave {knob} out")
        return self


def _vector_index_field() -> Any:
    return Field(
        default_factory=lambda: {name: VectorIndexSettings() for name in DEFAULT_SPACES},
        description="HNSW index and compression per space (the key is the space's name), applied when the "
        "space's vector is created and, where Weaviate allows, changed in place on start: "
        "XMODAL_WEAVIATE__VECTOR_INDEX__CLIP__COMPRESSION=rq, __EF, __EF_CONSTRUCTION, __MAX_CONNECTIONS, "
        "__RQ_BITS, __RESCORE_LIMIT, __PQ_SEGMENTS, __PQ_CENTROIDS, __TRAINING_LIMIT. A space not named has "
        "Weaviate's defaults (no compression); a space's caption vector (clip_caption) has its space's settings "
        "unless it is named itself.",
    )


class WeaviateSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Weaviate host.")
    http_port: int = Field(8080, description="Weaviate REST port.")
    grpc_port: int = Field(50051, description="Weaviate gRPC port (used for batch writes and search).")
    secure: bool = Field(False, description="Use https/TLS to reach Weaviate.")
    api_key: SecretStr | None = Field(None, description="Weaviate API key, if the server requires one.")
    collection: str = Field("Asset", description="Collection holding the assets; object uuid = uuid5(asset_id).")
    timeout_s: float = Field(10.0, gt=0, description="Per-call timeout towards Weaviate.")
    nodes: WeaviateEndpoints = Field(
        default_factory=list, description="The cluster's other nodes, host:http_port:grpc_port, comma "
        "separated (or a JSON list). The store uses the first that answers (host first); when the one it uses "
        "stops answering, that call fails retriably and the next one moves to the next node that is ready. "
        "`xmodal stack up --nodes 3` prints the value for its cluster.",
    )
    replication_factor: int = Field(
        1, ge=1, description="Copies of each shard when xmodal creates the collection: 3 on a 3-node cluster. "
        "1 leaves it to the server (its REPLICATION_MINIMUM_FACTOR, which the local cluster sets to 3). An "
        "existing collection keeps its factor.",
    )
    write_consistency: Consistency = Field(
        "QUORUM", description="Replicas that must confirm a write (ONE, QUORUM, ALL) before the worker acks "
        "its events. QUORUM of 3 keeps writing with one node down and, with QUORUM reads, every read overlaps "
        "a replica that has the write.",
    )
    cluster_write_timeout_s: float = Field(
        25.0, gt=0, description="Per-write timeout on a cluster (nodes given or replication_factor > 1), when "
        "longer than timeout_s. Weaviate's coordinator goes on replicating a write for up to 20 s after the "
        "client stopped waiting, stamped with the time it arrived: a write given up on sooner, retried, and "
        "followed by a newer version of the same asset could still land last and win on every replica (a "
        "lost update). Waiting this long means a write the store gave up on was never applied, or was "
        "applied before anything newer was sent.",
    )
    read_consistency: Consistency = Field(
        "QUORUM", description="Replicas a read must agree with (ONE, QUORUM, ALL). Lookups by id read that "
        "many; a search reads one replica per shard and checks the objects it found against that many (newer "
        "versions win). QUORUM + QUORUM writes: a lookup after a stored write sees it (read-your-writes); ONE "
        "is cheaper and may answer from a node that rejoined and is still catching up.",
    )

    multi_tenancy: bool = Field(
        False, description="One Weaviate tenant per customer (native multi-tenancy): every event then needs a "
        "`tenant`, and every gateway key is bound to one (gateway tenant_keys). Fixed when the collection is "
        "created: a collection made the other way stops the worker and the gateway at start.",
    )
    auto_tenant_creation: bool = Field(
        True, description="With multi_tenancy: the first write into a tenant creates it (Weaviate's "
        "autoTenantCreation, set when the collection is created and updated in place on start). False: only "
        "`xmodal tenants add` creates tenants, and an upsert into an unknown one is dead-lettered "
        "(unknown_tenant).",
    )

    behind_alias: bool = Field(
        False, description="Create a new collection as `<collection>_v1` behind a Weaviate alias named "
        "`<collection>`, so that `xmodal migrate` can move it to another model with one atomic switch. A worker "
        "writes the collection the alias points at when it starts (and keeps writing it after a switch); the "
        "gateway follows the alias. An existing collection is used as it is: a plain collection cannot be put "
        "behind an alias of its own name.",
    )

    vector_index: dict[str, VectorIndexSettings] = _vector_index_field()

    def index_of(self, space: str) -> VectorIndexSettings:
        """The index settings of ``space``: its own, or Weaviate's defaults when it has none. A caption vector
        (``clip_caption``) without settings of its own has its space's."""
        own = self.vector_index.get(space.lower())
        base = caption_space(space.lower())
        if own is None and base is not None:
            own = self.vector_index.get(base)
        return own or VectorIndexSettings()

    def endpoints(self) -> list[WeaviateEndpoint]:
        """Every node the store may use, ``host`` first, each once."""
        first = WeaviateEndpoint(host=self.host, http_port=self.http_port, grpc_port=self.grpc_port)
        return list(dict.fromkeys([first, *self.nodes]))


class ModelSettings(BaseModel):
    """One embedding space: a model and how it runs. The space's name is its key in ``spaces``."""

    name: str = Field(
        BUILTIN_MODEL,
        description="transformers hub id or local path of the space's model: a CLIP-family dual encoder "
        "(CLIP, SigLIP, SigLIP2: images + texts) or a CLAP (audio + texts). "
        f"'{BUILTIN_MODEL}', '{BUILTIN_LARGE_MODEL}' (its larger re-ranking sibling) and "
        f"'{BUILTIN_SOUNDS_MODEL}' are the small models shipped with xmodal.",
    )
    revision: str | None = Field(
        None, description="hub revision (branch, tag or commit) to load the model at. Every stored vector "
        "records the model as `<name>@<revision>`: the hub commit transformers resolved, else this; a local "
        "directory or a builtin model is recorded by its name alone.",
    )
    enabled: bool = Field(True, description="false turns the space off (its stored vectors stay).")
    space: str = Field("clip", description="The space's name, the Weaviate named vector (set from the key).")
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda, cuda:1, ...")
    dtype: str = Field("auto", description="auto (bf16 on GPU, fp32 on CPU), float32, float16, bfloat16.")
    max_batch: int = Field(64, ge=1, description="Most inputs per forward pass. Raise on a GPU (256+).")


#: The spaces a deployment has unless told otherwise. XMODAL_SPACES__<NAME>__<FIELD> changes one field of a
#: space, adds a space (a new name), or turns one off (XMODAL_SPACES__CLAP__ENABLED=false).
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "clip": {"name": BUILTIN_MODEL},
    "clap": {"name": BUILTIN_SOUNDS_MODEL, "max_batch": 32},
}


def _spaces_over_defaults(value: Any) -> Any:
    """Each configured space is its defaults (if it has any) with the given fields on top."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return value
    merged: dict[str, Any] = {name: dict(fields) for name, fields in DEFAULT_SPACES.items()}
    for name, fields in value.items():
        key = str(name).lower()
        if caption_space(key) is not None or segments_space(key) is not None:
            raise ValueError(f"space {key!r}: names ending in {CAPTION_SUFFIX!r} or {SEGMENTS_SUFFIX!r} are the "
                             "spaces' caption vectors and video-segment vectors; choose another name")
        given = fields.model_dump() if isinstance(fields, BaseModel) else dict(fields or {})
        merged[key] = {**merged.get(key, {}), **given, "space": key}
    for key, fields in merged.items():
        fields["space"] = key
    return merged


Spaces = Annotated[dict[str, ModelSettings], BeforeValidator(_spaces_over_defaults)]


def enabled_spaces(spaces: dict[str, ModelSettings]) -> dict[str, ModelSettings]:
    """The spaces that are on, in configuration order."""
    return {name: m for name, m in spaces.items() if m.enabled}


def _spaces_field() -> Any:
    return Field(
        default_factory=lambda: {k: ModelSettings(**v) for k, v in _spaces_over_defaults({}).items()},
        description="Embedding spaces, name -> model (each one named vector of the collection). An asset "
        "gets a vector in every space whose model accepts its modality. XMODAL_SPACES__CLIP__NAME=<hub id or "
        "path> changes a model, a new name adds a space, XMODAL_SPACES__<NAME>__ENABLED=false turns one off.",
    )


class FetchSettings(BaseModel):
    connect_timeout_s: float = Field(3.0, gt=0, description="Connect timeout for http(s) content.")
    read_timeout_s: float = Field(10.0, gt=0, description="Total read timeout for http(s) content.")
    max_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest content accepted, in bytes.")
    max_redirects: int = Field(3, ge=0, description="Redirects followed; each target is checked again.")
    max_pixels: int = Field(40_000_000, ge=1, description="Largest decoded image (width*height).")
    max_audio_seconds: float = Field(
        600.0, gt=0, description="Longest audio clip decoded, in seconds: checked from the header before "
        "reading and again while reading; longer clips are dead-lettered as too_large. 600 s decodes to 115 MB "
        "(48 kHz mono float32).",
    )
    max_audio_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Largest audio file decoded, in bytes (fetches are capped by "
        "max_bytes first)."
    )
    max_video_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Largest video file decoded, in bytes (fetches are capped by "
        "max_bytes first)."
    )
    max_video_seconds: float = Field(
        600.0, gt=0, description="Longest video decoded, in seconds: checked from the header before a frame "
        "is decoded and again while decoding; longer ones are dead-lettered as too_large.",
    )
    max_video_pixels: int = Field(1920 * 1080, ge=1, description="Largest video frame (width*height).")
    max_video_frames: int = Field(36_000, ge=1, description="Most frames decoded from one video.")
    max_video_segments: int = Field(
        32, ge=1, le=256, description="Most segments (keyframes, one vector each per space) per video; the "
        "last segment runs to the end.",
    )
    segment_scene_threshold: float = Field(
        0.025, gt=0, le=1, description="A new segment starts where the colours differ this much from the "
        "segment's keyframe (earth mover's distance per channel, 0-1; services/fetch/video.py).",
    )
    segment_min_seconds: float = Field(0.5, gt=0, description="Shortest segment but the last.")
    segment_max_seconds: float = Field(10.0, gt=0, description="Longest segment without a scene change.")
    max_video_playback_bytes: int = Field(
        4 * 1024 * 1024, ge=0, description="A browser-playable video (WebM VP8/VP9/AV1, MP4 H.264) at most this "
        "big is stored with its object, so the search page can play it from the matched time; 0: never.",
    )
    retries: int = Field(2, ge=0, description="Retries of a failed http fetch before it counts as failed.")
    file_roots: list[Path] = Field(
        default_factory=list, description="Folders file:// URIs may read from. Empty: file:// refused."
    )
    allow_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs exempt from the SSRF guard (e.g. 127.0.0.0/8 for a local image server).",
    )


class BatchSettings(BaseModel):
    max_events: int = Field(256, ge=1, description="Most events taken from Kafka per micro-batch.")
    max_wait_s: float = Field(
        0.02, gt=0, description="Longest wait for a batch to fill (Faust counts it from when the agent asks "
        "for the next batch). Under load batches fill while the previous one is processed."
    )
    fetch_concurrency: int = Field(16, ge=1, description="Content fetches in flight per batch.")
    retry_backoff_s: float = Field(0.5, gt=0, description="First backoff after a transient failure.")
    retry_backoff_max_s: float = Field(10.0, gt=0, description="Longest backoff after transient failures.")


class WorkerSettings(BaseSettings):
    """`xmodal worker`: consumes `assets`, embeds, writes Weaviate, dead-letters bad events."""

    model_config = _ENV
    kafka: KafkaSettings = KafkaSettings()
    weaviate: WeaviateSettings = WeaviateSettings()
    spaces: Spaces = _spaces_field()
    fetch: FetchSettings = FetchSettings()
    batch: BatchSettings = BatchSettings()
    web_host: str = Field("127.0.0.1", description="Bind address of the worker's web server (/metrics, "
                          "/livez, /readyz).")
    web_port: int = Field(
        6066, ge=0, description="First port the worker's web server tries; a worker finding it taken (another "
        "worker on this machine) takes the next free one of web_port_span ports and logs which. 0: any free port.",
    )
    web_port_span: int = Field(16, ge=1, description="How many ports from web_port a worker may try.")
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="Bound on SIGTERM/SIGINT: the batch in flight gets half of it to be stored and "
        "acked (else it is left unacked and consumed again), then the worker leaves the group (a static member "
        "keeps its partitions for session_timeout_s); past the bound it exits anyway (Kafka or Weaviate "
        "unreachable). Keep Kubernetes' terminationGracePeriodSeconds above it.",
    )
    start_wait_s: float = Field(
        300.0, ge=0, description="How long a starting worker waits for Kafka to answer (retrying, its /readyz "
        "saying so) before it exits with an error; a worker started before its broker, or during a broker "
        "restart, then joins by itself. 0: do not wait.",
    )
    buffer_max_events: int = Field(
        512, ge=1, description="Events Faust buffers per partition ahead of the agent (stream_buffer_maxsize); "
        "with max_events and the partitions held, this bounds the worker's memory for events.",
    )
    commit_interval_s: float = Field(
        0.1, gt=0, description="How often acked offsets are committed; bounds read-your-writes waits."
    )
    session_timeout_s: float = Field(
        10.0, gt=0, description="How long the group waits for a silent (crashed) worker before moving its "
        "partitions to the others. Lower = faster recovery after a crash, higher = fewer false alarms.",
    )
    heartbeat_interval_s: float = Field(3.0, gt=0, description="Group heartbeat; keep it <= session/3.")
    group_instance_id: str | None = Field(
        None, description="Static group membership (e.g. the pod or host name): a restarted worker takes its "
        "partitions back at once instead of waiting for a rebalance. Unique per worker.",
    )
    torch_threads: int = Field(
        0, ge=0, description="Threads torch uses within one forward pass on the CPU (intra-op). 0: torch's "
        "default, one per core (a worker embeds large batches; lower it where the worker shares its cores "
        "with Weaviate or a gateway).",
    )
    log_level: str = Field("info", description="debug, info, warn or error.")
    data_dir: Path = Field(
        _xdg("XDG_STATE_HOME", ".local/state") / "worker",
        description="Faust's local data dir (no tables are used; it only holds the app's lock files).",
    )


RerankKind = Literal["none", "biencoder", "crossencoder"]
#: The cross-encoder a `crossencoder` reranker loads when XMODAL_RERANK__MODEL is not given (from the hub).
BLIP_ITM_MODEL = "Salesforce/blip-itm-base-coco"


class RerankSettings(BaseModel):
    """Re-ranking of a search's first results (request `rerank: true`; services/gateway/rerank.py)."""

    kind: RerankKind = Field(
        "biencoder",
        description="none (`rerank: true` answers 400 rerank_unavailable), biencoder (re-embeds query and "
        "candidates with a larger model of the same family, scores by cosine; candidate vectors are cached) or "
        "crossencoder (a BLIP image-text matcher reads each text-image pair together: better, slower, "
        "cross-modal pairs only). A reranker that fails to load is logged and left out; search goes on.",
    )
    model: str = Field(
        "", description="hub id or local path of the reranker's model; empty: biencoder "
        f"'{BUILTIN_LARGE_MODEL}' (shipped), crossencoder '{BLIP_ITM_MODEL}'. A biencoder takes "
        "any CLIP-family checkpoint (as XMODAL_SPACES__<NAME>__NAME does), a crossencoder a "
        "BlipForImageTextRetrieval one.",
    )
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda, cuda:1, ...")
    dtype: str = Field("auto", description="auto (bf16 on GPU, fp32 on CPU), float32, float16, bfloat16.")
    top_n: int = Field(
        20, ge=1, le=1000, description="Results re-ranked when the request gives no rerank_top_n (the window "
        "grows to offset + limit, up to max_top_n). Cost grows linearly: one model input per candidate.",
    )
    max_top_n: int = Field(
        100, ge=1, le=1000, description="Largest rerank_top_n a request may ask for (more: 400); results past "
        "it stay in retrieval order.",
    )
    budget_s: float = Field(
        0.5, gt=0, description="Time budget of one re-ranking (content reads + model). Past it the results "
        "come back in retrieval order with rerank.degraded=true (never an error). Raise it on a CPU with a "
        "cross-encoder; the request deadline still applies.",
    )
    cache_size: int = Field(
        4096, ge=0, description="Candidate vectors the biencoder keeps (LRU keyed by asset_id + content hash: "
        "an updated asset is embedded again). About 4 bytes x dim each.",
    )
    max_batch: int = Field(32, ge=1, description="Most model inputs per forward pass (raise on a GPU).")

    @model_validator(mode="after")
    def _defaults_and_bounds(self) -> RerankSettings:
        if not self.model:  # each kind's own default
            self.model = {"biencoder": BUILTIN_LARGE_MODEL, "crossencoder": BLIP_ITM_MODEL}.get(self.kind, "")
        if self.top_n > self.max_top_n:
            raise ValueError(f"rerank top_n ({self.top_n}) is larger than max_top_n ({self.max_top_n}): lower "
                             "XMODAL_RERANK__TOP_N or raise XMODAL_RERANK__MAX_TOP_N")
        return self


class GatewaySettings(BaseSettings):
    """`xmodal gateway`: the search API, the search page and the status page."""

    model_config = _ENV
    kafka: KafkaSettings = KafkaSettings()
    weaviate: WeaviateSettings = WeaviateSettings()
    spaces: Spaces = _spaces_field()
    fetch: FetchSettings = FetchSettings()
    host: str = Field("127.0.0.1", description="Bind address. Use 0.0.0.0 only behind a proxy or with API keys.")
    port: int = Field(8000, description="HTTP port.")
    api_keys: list[SecretStr] = Field(
        default_factory=list, description="Accepted keys for the X-API-Key header, bound to no tenant (single-"
        "tenant deployments only). Empty, with no tenant_keys: no auth.",
    )
    tenant_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="Multi-tenant keys: tenant -> its key for X-API-Key, a JSON object "
        "(XMODAL_TENANT_KEYS='{\"acme\": \"...\"}'). A request with a key is scoped to that key's tenant; a "
        "`tenant` a client sends is ignored. Needs weaviate.multi_tenancy, which in turn needs at least one key.",
    )
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest request body, uploads included.")
    max_concurrency: int = Field(
        0, ge=0, description="Searches (and publishes) running at once; more wait in a short line "
        "(max_queue_wait_s) or get 429 with Retry-After. 0: one per CPU core, at least 2. Measured on 2 cores "
        "at 2x capacity (tests/integration/gateway/test_overload.py): 2 slots kept admitted searches at p99 "
        "50-58 ms against 237 ms with 8; a search admitted beyond what the cores serve at once only waits "
        "inside, so raise it only where the work is elsewhere (the model on a GPU, a remote Weaviate).",
    )
    max_queue_wait_s: float = Field(
        0.02, ge=0, description="Longest wait for a search slot when all max_concurrency are taken. A search "
        "whose expected wait (its place in line x the recent search time / max_concurrency) is longer is "
        "answered 429 at once, one that waited this long without a slot then: admitted searches stay within "
        "about this much of their unloaded latency under any load. 0: no line (all slots taken: 429 at once).",
    )
    request_timeout_s: float = Field(10.0, gt=0, description="Per-request deadline.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS ('*' for all).")
    query_cache_size: int = Field(1024, ge=0, description="LRU entries of text-query embeddings.")
    query_batch_max: int = Field(32, ge=1, description="Most queries embedded in one forward pass.")
    query_batch_wait_s: float = Field(
        0.0, ge=0, description="Extra wait to fill a query batch when the model is idle. 0: none, a lone query goes "
        "at once and queries arriving while the model runs form the next batch (natural batching); a few ms "
        "only pays on a large GPU.")
    query_queue_max: int = Field(256, ge=1, description="Queued queries before the gateway answers 429.")
    torch_threads: int = Field(
        0, ge=0, description="Threads torch uses within one forward pass on the CPU (intra-op). 0: a quarter "
        "of the cores, at least 1: queries are small and already batched together, and more threads per pass "
        "fight Weaviate, Kafka and the worker for the same cores. Measured on 2 cores with ingestion running "
        "(bench/gateway_bench.py): 1 thread instead of torch's 2 raised the gateway's capacity from 76/s to "
        "149/s and the rate holding p99 <= 25 ms from 49/s to 76/s.",
    )
    consistency_timeout_s: float = Field(
        5.0, gt=0, description="Longest wait for `consistent_with` offsets to be committed."
    )
    rerank: RerankSettings = Field(
        default_factory=RerankSettings, description="Re-ranking (request `rerank: true`): XMODAL_RERANK__KIND "
        "(none, biencoder, crossencoder), __MODEL, __DEVICE, __TOP_N, __MAX_TOP_N, __BUDGET_S, __CACHE_SIZE.",
    )
    worker_metrics_urls: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:6066/metrics"],
        description="Workers' /metrics URLs the status page reads freshness and outcomes from "
        "(Prometheus does this in deployments; the status page is the at-a-glance view).",
    )
    status_interval_s: float = Field(2.0, gt=0, description="How often the status page's figures are sampled.")
    alias_poll_s: float = Field(
        1.0, gt=0, description="How often the gateway reads which collection XMODAL_WEAVIATE__COLLECTION (an "
        "alias) points at and which model made each space there (`xmodal migrate`). After a cutover or a "
        "rollback it answers from the other collection within about this long, each search wholly from one "
        "side with that side's model; it loads a migration's model before it switches.",
    )
    status_all_tenants: bool = Field(
        False, description="Multi-tenant: /v1/status lists every tenant's object count to any valid key. False: "
        "a tenant key sees its own tenant's count only (tenant names are customers' names).",
    )
    directions: dict[str, str] = Field(
        default_factory=dict,
        description="Which space answers which direction, e.g. {\"image->text\": \"clip_large\"} (a JSON object in "
        "XMODAL_DIRECTIONS). Directions not named go to the first configured space that can answer; "
        "a request's `space` option overrides both.")
    golden_file: Path | None = Field(
        None, description="YAML file of golden queries (services/evaluation/golden.py) the gateway runs "
        "against itself on a schedule: xmodal_golden_* metrics and the status page's Golden queries section. "
        "None: no golden queries. An invalid file stops the gateway at start with the entry and key at fault.",
    )
    golden_interval_s: float = Field(
        60.0, gt=0, description="Seconds between runs of the golden queries (the first runs at start; a run "
        "with failures is followed by another within 5 s). Each run is one search per golden query, one at a time.",
    )

    @model_validator(mode="after")
    def _keys_match_tenancy(self) -> GatewaySettings:
        bad = [t for t in self.tenant_keys if not TENANT_NAME.match(t)]
        if bad:
            raise ValueError(f"tenant_keys: tenant names are [A-Za-z0-9_-], at most 64 chars: {bad[:3]}")
        if self.weaviate.multi_tenancy and (self.api_keys or not self.tenant_keys):
            raise ValueError("with XMODAL_WEAVIATE__MULTI_TENANCY=true every key must be bound to a tenant: set "
                             "XMODAL_TENANT_KEYS (tenant -> key) and leave XMODAL_API_KEYS empty")
        if self.tenant_keys and not self.weaviate.multi_tenancy:
            raise ValueError("XMODAL_TENANT_KEYS needs XMODAL_WEAVIATE__MULTI_TENANCY=true (a collection with one "
                             "Weaviate tenant per customer); use XMODAL_API_KEYS for a single-tenant gateway")
        if self.weaviate.multi_tenancy and self.golden_file is not None:
            raise ValueError("golden queries (XMODAL_GOLDEN_FILE) do not run on a multi-tenant gateway yet: they "
                             "would need a tenant to search in; leave XMODAL_GOLDEN_FILE unset")
        secrets = [k.get_secret_value() for k in self.tenant_keys.values()]
        if len(set(secrets)) != len(secrets):
            raise ValueError("XMODAL_TENANT_KEYS: two tenants share a key; each tenant needs its own")
        return self

    @property
    def search_slots(self) -> int:
        """max_concurrency, or one per CPU core (at least 2) when it is 0."""
        return self.max_concurrency or max(2, os.cpu_count() or 2)

    @property
    def cpu_threads(self) -> int:
        """torch_threads, or a quarter of the CPU cores (at least 1) when it is 0."""
        return self.torch_threads or max(1, (os.cpu_count() or 1) // 4)


class StackSettings(BaseSettings):
    """`xmodal stack`: the local Kafka and Weaviate used by `make up`, the demo and the tests."""

    model_config = _ENV
    kafka: KafkaSettings = KafkaSettings()
    weaviate: WeaviateSettings = WeaviateSettings()
    nodes: int = Field(
        1, ge=1, le=9, description="Nodes of each engine. 1: one Kafka and one Weaviate (the demo's). 3: a "
        "local cluster of 3 Kafka brokers (KRaft, each also a controller; topics with replication factor 3, "
        "min.insync.replicas 2) and 3 Weaviate nodes (Raft; REPLICATION_MINIMUM_FACTOR 3). Node i (1-based) "
        f"listens on every base port + {NODE_PORT_STRIDE}*(i-1) (Kafka 9092, 9102, 9112; Weaviate HTTP 8080, "
        "8090, 8100; gRPC 50051, 50061, 50071; ...) and keeps its data, log and pid file in "
        "state_dir/kafka-i and state_dir/weaviate-i.",
    )
    kafka_version: str = Field("4.1.1", description="Apache Kafka version fetched from Maven Central.")
    kafka_controller_port: int = Field(
        9093, description=f"KRaft controller port (node i of a cluster: + {NODE_PORT_STRIDE}*(i-1))."
    )
    kafka_heap: str = Field("768m", description="Kafka JVM heap (-Xmx and -Xms), per broker.")
    weaviate_version: str = Field("v1.39.0", description="Weaviate server version built with go install.")
    weaviate_gossip_port: int = Field(
        7946, description=f"Weaviate memberlist gossip port (node i of a cluster: + {NODE_PORT_STRIDE}*(i-1))."
    )
    weaviate_data_port: int = Field(
        7947, description=f"Weaviate cluster data port (node i of a cluster: + {NODE_PORT_STRIDE}*(i-1))."
    )
    weaviate_raft_port: int = Field(
        8300, description=f"Weaviate Raft port (node i of a cluster: + {NODE_PORT_STRIDE}*(i-1))."
    )
    weaviate_raft_rpc_port: int = Field(
        8301, description="Weaviate Raft RPC port. A cluster on one host needs Raft port + 1: Weaviate derives "
        "the other nodes' RPC ports from their Raft ports that way.",
    )
    weaviate_profiling_port: int = Field(
        6060, description=f"Weaviate Go profiling port (node i of a cluster: + {NODE_PORT_STRIDE}*(i-1))."
    )
    cache_dir: Path = Field(
        _xdg("XDG_CACHE_HOME", ".cache"), description="Jars, the Weaviate binary and the virtual environment."
    )
    state_dir: Path = Field(
        _xdg("XDG_STATE_HOME", ".local/state") / "stack", description="Data, logs and pid files of the stack."
    )
    start_timeout_s: float = Field(120.0, gt=0, description="Longest wait for a service to become ready.")

    @property
    def kafka_port(self) -> int:
        first = self.kafka.bootstrap_servers.split(",")[0]
        return int(first.rsplit(":", 1)[1])

    @staticmethod
    def node_port(base: int, node: int) -> int:
        """The port node ``node`` (1-based) of a cluster uses where a single node uses ``base``."""
        return base + NODE_PORT_STRIDE * (node - 1)

    @model_validator(mode="after")
    def _cluster_ports(self) -> StackSettings:
        if self.nodes == 1:
            return self
        if self.weaviate_raft_rpc_port != self.weaviate_raft_port + 1:
            raise ValueError("a local Weaviate cluster needs weaviate_raft_rpc_port = weaviate_raft_port + 1 "
                             f"(got {self.weaviate_raft_port} and {self.weaviate_raft_rpc_port})")
        bases = [self.kafka_port, self.kafka_controller_port, self.weaviate.http_port, self.weaviate.grpc_port,
                 self.weaviate_gossip_port, self.weaviate_data_port, self.weaviate_raft_port,
                 self.weaviate_raft_rpc_port, self.weaviate_profiling_port]
        ports = [self.node_port(b, n) for b in bases for n in range(1, self.nodes + 1)]
        if len(set(ports)) != len(ports):
            clash = sorted({p for p in ports if ports.count(p) > 1})
            raise ValueError(f"the {self.nodes} nodes' ports overlap ({clash}): move a base port")
        return self
