"""The ``clips`` sample set: short videos of a shape that moves and changes colour, with a tone that changes too.

Deterministic: every frame and sample comes from a seeded generator and the encoder runs single-threaded, so
the same seed gives the same bytes (checked by a test). Each clip is a WebM (VP9 video, Opus sound) of
64x64 frames at 8 fps, drawn like the shapes model's pictures (services.embedding.shapes.world): one
``shape`` moves from left to right over a fixed background, ``before`` in colour until ``change_s``, then
``after``; its sound is a steady tone of the sounds model (services.embedding.sounds.world) that changes at
the same moment (low to high). :data:`CLIPS` lists what each clip truly shows, which the demo's labelled
queries turn into judgements ("a blue circle" -> the clip and the time it turns blue).

>>> clip = CLIPS[0]
>>> clip.asset_id, clip.caption_at(0.5), clip.caption_at(3.0)
('clip-circle-red-blue', 'a red circle', 'a blue circle')
"""

from __future__ import annotations

import base64
import io
import math
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from schemas.asset_event import AssetEvent
from services.embedding.shapes import world

FPS = 8
SIZE = world.IMAGE_SIZE
AUDIO_RATE = 48_000  # Opus's own rate
SEED = 2026


@dataclass(frozen=True)
class ClipScript:
    """What one sample clip shows: ``shape`` in colour ``before`` until ``change_s``, then ``after``."""

    shape: str
    before: str
    after: str
    change_s: float
    duration_s: float = 4.0

    @property
    def asset_id(self) -> str:
        return f"clip-{self.shape}-{self.before}-{self.after}"

    def color_at(self, t: float) -> str:
        return self.before if t < self.change_s else self.after

    def caption_at(self, t: float) -> str:
        return world.canonical_caption(self.color_at(t), self.shape).removeprefix("a photo of ")

    def caption(self) -> str:
        """The clip in words: "a red circle that turns blue"."""
        return f"{self.caption_at(0.0)} that turns {self.after}"


#: The sample set: every shape, changing colour at different moments; no two clips share a colour pair.
CLIPS: tuple[ClipScript, ...] = (
    ClipScript("circle", "red", "blue", 2.0),
    ClipScript("square", "green", "yellow", 1.5),
    ClipScript("triangle", "orange", "purple", 2.5),
    ClipScript("star", "yellow", "red", 2.0),
    ClipScript("circle", "purple", "green", 1.5),
    ClipScript("square", "blue", "orange", 2.5),
)


def frames(script: ClipScript, *, seed: int = SEED) -> list[Image.Image]:
    """The clip's frames (RGB, SIZE x SIZE), FPS per second."""
    rng = random.Random(zlib.crc32(f"clip:{seed}:{script.asset_id}".encode()))
    canvas = world.background(rng, SIZE)
    radius, angle, y = rng.uniform(0.22, 0.3), rng.uniform(0, 2 * math.pi), rng.uniform(0.35, 0.65)
    n = round(script.duration_s * FPS)
    out = []
    for i in range(n):
        x = radius + (1 - 2 * radius) * i / max(1, n - 1)
        out.append(world.draw_on(canvas, rng, script.color_at(i / FPS), script.shape, x=x, y=y, radius=radius,
                                 angle=angle + 0.1 * i, size=SIZE))
    return out


def sound(script: ClipScript, *, seed: int = SEED) -> npt.NDArray[np.float32]:
    """The clip's sound at AUDIO_RATE: a low hum until the change, a high hum after (the sounds model's
    classes), each rendered at 16 kHz and resampled."""
    import soxr  # type: ignore[import-untyped]  # no py.typed in soxr 1.1

    from services.embedding.sounds import world as sounds

    rng = random.Random(zlib.crc32(f"clip-sound:{seed}:{script.asset_id}".encode()))
    parts = []
    for pitch, seconds in (("low", script.change_s), ("high", script.duration_s - script.change_s)):
        tone = sounds.render(rng, sounds.Tone(pitch, "sine"), "loud")  # type: ignore[arg-type]
        n = round(seconds * sounds.SAMPLING_RATE)
        parts.append(np.resize(tone, n))  # a steady tone repeats without changing class
    mono = np.concatenate(parts).astype(np.float32)
    return np.asarray(soxr.resample(mono, sounds.SAMPLING_RATE, AUDIO_RATE), dtype=np.float32)


def encode_webm(images: Sequence[Image.Image], *, fps: int = FPS, audio: npt.NDArray[np.float32] | None = None,
                rate: int = AUDIO_RATE) -> bytes:
    """``images`` (and mono ``audio`` at ``rate``) as a WebM: VP9 and Opus, single-threaded (deterministic)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm", container_options={"fflags": "+bitexact"}) as out:
        video = out.add_stream("libvpx-vp9", rate=fps)
        video.width, video.height = images[0].size
        video.pix_fmt = "yuv420p"
        video.options = {"threads": "1", "deadline": "good", "cpu-used": "4", "crf": "20", "b": "0"}
        sound_stream = out.add_stream("libopus", rate=rate, layout="mono") if audio is not None else None
        for image in images:
            for packet in video.encode(av.VideoFrame.from_image(image)):  # type: ignore[no-untyped-call]
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if sound_stream is not None and audio is not None:
            _encode_audio(out, sound_stream, audio, rate)
    return buf.getvalue()


def _encode_audio(out: av.container.OutputContainer, stream: av.AudioStream, audio: npt.NDArray[np.float32],
                  rate: int) -> None:
    chunk = 960  # 20 ms at 48 kHz, Opus's frame
    pts = 0
    for start in range(0, len(audio), chunk):
        block = np.clip(audio[start : start + chunk], -1.0, 1.0).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, pts
        pts += block.shape[1]
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def clip_bytes(script: ClipScript, *, seed: int = SEED, with_sound: bool = True) -> bytes:
    """The clip's WebM file."""
    return encode_webm(frames(script, seed=seed), audio=sound(script, seed=seed) if with_sound else None)


def clips_sample(*, seed: int = SEED, now: datetime | None = None) -> list[AssetEvent]:
    """The demo's clips as events (inline data), with metadata shape, color_before, color_after, change_s."""
    when = now or datetime.now(UTC)
    return [AssetEvent.model_validate({
        "schema_version": 1, "asset_id": s.asset_id, "modality": "video", "event_time": when,
        "data": base64.b64encode(clip_bytes(s, seed=seed)).decode(),
        "metadata": {"shape": s.shape, "color_before": s.before, "color_after": s.after,
                     "change_s": s.change_s, "caption": s.caption(), "set": "clips"},
    }) for s in CLIPS]
