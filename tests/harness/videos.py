"""Bad and odd video files for the tests: each made by PyAV, so every one is exactly what its name says."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

from services.video_samples import CLIPS, frames


def claims_hours(hours: float = 4.0) -> bytes:
    """A WebM of two frames, the second stamped ``hours`` in: its header gives that duration."""
    images = frames(CLIPS[0])[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=8)
        stream.width, stream.height = images[0].size
        stream.pix_fmt = "yuv420p"
        for image, pts in zip(images, (0, round(hours * 3600 * 8)), strict=True):
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            frame.pts, frame.time_base = pts, Fraction(1, 8)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def audio_only(seconds: float = 1.0) -> bytes:
    """A WebM with an Opus track of silence and no video stream."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48_000, layout="mono")
        for i in range(round(seconds * 50)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48_000, i * 960
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def unknown_codec() -> bytes:
    """A sample clip whose Matroska CodecID names a codec FFmpeg does not know (V_VP9 -> V_ZZ9)."""
    from services.video_samples import clip_bytes

    raw = clip_bytes(CLIPS[0], with_sound=False)
    assert raw.count(b"V_VP9") == 1
    return raw.replace(b"V_VP9", b"V_ZZ9")
