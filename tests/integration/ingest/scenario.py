"""A seeded mix of good and bad events, and the state they must leave behind when applied one by one."""

from __future__ import annotations

import base64
import io
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf  # type: ignore[import-untyped]
from PIL import Image

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def png(color: tuple[int, int, int], size: tuple[int, int] = (12, 12)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def wav(hz: float, seconds: float = 0.3, rate: int = 8000, fmt: str = "WAV") -> str:
    """A tone as a base64 audio file (any rate: the worker resamples to its audio space's)."""
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate, format=fmt,
             subtype="PCM_16" if fmt == "WAV" else None)
    return base64.b64encode(buf.getvalue()).decode()


#: The embedding spaces each modality belongs to with the default spaces (clip: image + text; clap: audio + text)
SPACES_OF = {"image": {"clip"}, "text": {"clip", "clap"}, "audio": {"clap"}}


@dataclass
class Sent:
    key: bytes | None
    value: bytes
    reason: str | None  # the dead-letter reason this event must get; None for a good event


@dataclass
class Scenario:
    events: list[Sent] = field(default_factory=list)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset_id -> last applied event
    n: int = 0

    def _time(self) -> str:
        self.n += 1
        return (T0 + timedelta(milliseconds=self.n)).isoformat()

    def good(self, ev: dict[str, Any]) -> None:
        """Publish ``ev`` and apply it to the expected state, one event at a time."""
        ev = {"schema_version": 1, **ev}
        ev.setdefault("event_time", self._time())
        self.events.append(Sent(ev["asset_id"].encode(), json.dumps(ev).encode(), None))
        aid, stored = ev["asset_id"], self.state.get(ev["asset_id"])
        if stored is not None and datetime.fromisoformat(ev["event_time"]) < datetime.fromisoformat(
            stored["event_time"]
        ):
            return  # older than what is stored: ignored
        if ev["op"] == "delete":
            self.state.pop(aid, None)
        else:
            self.state[aid] = ev

    def bad(self, reason: str, value: bytes | dict[str, Any], key: str | None) -> None:
        raw = value if isinstance(value, bytes) else json.dumps({"schema_version": 1, **value}).encode()
        self.events.append(Sent(key.encode() if key is not None else None, raw, reason))


def upsert(rng: random.Random, aid: str) -> dict[str, Any]:
    meta = {"seq": rng.randrange(10**6), "color": rng.choice(["red", "green", "blue"]),
            "price": round(rng.uniform(1, 100), 2), "in_stock": rng.random() < 0.5,
            "tags": rng.sample(["a", "b", "c", "d"], 2)}
    if aid.startswith("img"):
        rgb = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        return {"asset_id": aid, "op": "upsert", "modality": "image", "data": png(rgb), "metadata": meta}
    if aid.startswith("snd"):
        fmt = rng.choice(["WAV", "FLAC", "OGG"])
        return {"asset_id": aid, "op": "upsert", "modality": "audio", "data": wav(rng.uniform(100, 3000), fmt=fmt),
                "metadata": meta}
    return {"asset_id": aid, "op": "upsert", "modality": "text", "text": f"product {aid} v{rng.randrange(99)}",
            "metadata": meta}


def churn(n_events: int, *, seed: int, n_assets: int = 400, image_every: int = 3) -> Scenario:
    """Upserts of images and texts with updates and deletes: one asset in ``image_every`` is a 12x12 PNG."""
    rng = random.Random(seed)
    sc = Scenario()
    assets = [f"img-{i}" if i % image_every == 0 else f"txt-{i}" for i in range(n_assets)]
    while len(sc.events) < n_events:
        aid = rng.choice(assets)
        if aid in sc.state and rng.random() < 0.1:
            sc.good({"asset_id": aid, "op": "delete"})
        else:
            sc.good(upsert(rng, aid))
    return sc


def mixed(seed: int, files_root: Path) -> Scenario:
    """500 events on images, texts and audio clips interleaved: updates, metadata-only updates, deletes,
    unknown deletes, same-batch pairs, 30 bad ones."""
    rng = random.Random(seed)
    sc = Scenario()
    assets = [f"img-{i}" for i in range(40)] + [f"txt-{i}" for i in range(40)] + [f"snd-{i}" for i in range(20)]
    bad_plan = (["invalid_json"] * 5 + ["invalid_event"] * 8 + ["fetch_forbidden"] * 4 + ["fetch_not_found"] * 3
                + ["undecodable"] * 6 + ["too_large"] * 4)
    rng.shuffle(bad_plan)
    bad_at = set(rng.sample(range(20, 470), len(bad_plan)))
    while len(sc.events) < 470:
        if len(sc.events) in bad_at:
            _add_bad(sc, rng, bad_plan.pop(), rng.choice(assets), files_root)
            continue
        aid = rng.choice(assets)
        r = rng.random()
        if aid in sc.state and r < 0.12:
            sc.good({"asset_id": aid, "op": "delete"})
        elif aid in sc.state and r < 0.3:  # same content, new metadata: must not run the model
            ev = {k: v for k, v in sc.state[aid].items() if k not in ("event_time",)}
            ev["metadata"] = {**ev["metadata"], "seq": rng.randrange(10**6)}
            sc.good(ev)
        elif aid in sc.state and r < 0.34:  # older than what is stored: ignored
            sc.good({**upsert(rng, aid), "event_time": (T0 - timedelta(hours=1)).isoformat()})
        else:
            sc.good(upsert(rng, aid))
    for i in range(10):
        sc.good({"asset_id": f"ghost-{i}", "op": "delete"})  # deletes of assets never stored
    for aid in ("pair-up-del", "pair-del-up"):  # same asset twice, adjacent: lands in one batch
        sc.good(upsert(rng, aid))
    sc.good({"asset_id": "pair-up-del", "op": "delete"})
    sc.good({"asset_id": "pair-del-up", "op": "delete"})
    sc.good(upsert(rng, "pair-del-up"))
    while len(sc.events) < 500:
        sc.good(upsert(rng, rng.choice(assets)))
    assert not bad_plan
    return sc


def _add_bad(sc: Scenario, rng: random.Random, reason: str, aid: str, root: Path) -> None:
    t = sc._time()
    base = {"asset_id": aid, "op": "upsert", "event_time": t, "metadata": {"seq": -1}}
    if reason == "invalid_json":
        sc.bad(reason, rng.choice([b"{not json", b"\xff\xfe\x00", b"", b"[1, 2", b'{"a": }']), aid)
    elif reason == "invalid_event":
        sc.bad(reason, rng.choice([
            {**base, "modality": "text"},  # no content
            {**base, "modality": "text", "text": "x", "colour": "red"},  # unknown field
            {**base, "modality": "video", "text": "x"},
            {**base, "modality": "text", "text": "x", "event_time": "yesterday"},
            {**base, "modality": "text", "text": "x", "metadata": {"bad key": 1}},
        ]), aid)
        if rng.random() < 0.4:  # or a key that is not the asset_id
            sc.events[-1] = type(sc.events[-1])(b"other-key", json.dumps(
                {"schema_version": 1, **base, "modality": "text", "text": "x"}).encode(), reason)
    elif reason == "fetch_forbidden":  # loopback, not allow-listed: refused before any connection
        sc.bad(reason, {**base, "modality": "image", "uri": f"http://127.0.0.1:9/{aid}.png"}, aid)
    elif reason == "fetch_not_found":
        sc.bad(reason, {**base, "modality": "image", "uri": (root / f"missing-{t}.png").as_uri()}, aid)
    elif reason == "undecodable":  # a text file sent as an image or a clip, or a clip cut inside its header
        sc.bad(reason, rng.choice([
            {**base, "modality": "image", "data": base64.b64encode(b"not an image").decode()},
            {**base, "modality": "audio", "data": base64.b64encode(b"RIFF, but a text file really").decode()},
            {**base, "modality": "audio", "data": base64.b64encode(base64.b64decode(wav(440))[:30]).decode()},
        ]), aid)
    elif reason == "too_large":  # more pixels than XMODAL_FETCH__MAX_PIXELS, longer than __MAX_AUDIO_SECONDS
        sc.bad(reason, rng.choice([
            {**base, "modality": "image", "data": png((9, 9, 9), (1200, 1000))},
            {**base, "modality": "audio", "data": wav(220, seconds=12.0, rate=4000)},
        ]), aid)
