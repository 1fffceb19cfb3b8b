"""Audio bytes -> a mono float32 clip at the model's sampling rate, bounded before and while decoding.

Decoding is libsndfile's (through soundfile: WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF); resampling is libsoxr's.
Any sample rate, bit depth and channel count is accepted; channels are mixed down by their mean. Limits:
``max_bytes`` before anything is parsed, ``max_seconds`` from the header before a sample is read, and again
on what is actually read, so a header that lies cannot make it allocate or run past the limit.

Lying or truncated files: a WAV whose sizes claim more than the file holds is sized by the file (libsndfile);
a header claiming fewer frames than the data holds is read up to its own count; a claim past ``max_seconds``
is ``too_large`` before reading. A truncated file gives what libsndfile decodes before the cut (WAV and MP3
up to the cut, OGG up to its last complete page); a decoder error on the way (FLAC loses sync), too little
left to find a frame, or no frame at all is ``undecodable``. Every read makes progress and at most
``max_seconds`` of frames are read, so no input can make it hang or allocate past the limit.

CPU-bound (5 s of 44.1 kHz stereo: ~6-12 ms as WAV, MP3, FLAC or Vorbis, ~30 ms as Opus, one core): callers
on an event loop run :func:`decode_audio` in a thread (libsndfile and libsoxr release the GIL).

>>> import io
>>> import numpy as np, soundfile
>>> buf = io.BytesIO()
>>> soundfile.write(buf, np.zeros((22050, 2), np.float32), 44100, format="WAV", subtype="PCM_16")
>>> clip = decode_audio(buf.getvalue(), sampling_rate=48000, max_seconds=60)
>>> clip.samples.shape, clip.samples.dtype.name, clip.duration_s, clip.source_rate, clip.source_channels
((24000,), 'float32', 0.5, 44100, 2)
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soundfile as sf  # type: ignore[import-untyped]  # no py.typed in soundfile 0.14
import soxr  # type: ignore[import-untyped]  # no py.typed in soxr 1.1

from schemas.dead_letter import Reason
from services.fetch.errors import FetchError
from services.monitoring import metrics

# Defaults of the settings the caller passes (FetchSettings.max_audio_seconds / max_audio_bytes).
DEFAULT_MAX_AUDIO_SECONDS = 600.0  # 600 s at 48 kHz mono float32: 115 MB decoded
DEFAULT_MAX_AUDIO_BYTES = 64 * 1024 * 1024  # a 5 min 44.1 kHz stereo 16-bit WAV is 53 MB
# Containers accepted (libsndfile's names). libsndfile also reads PAF, SD2, MAT, VOC and a dozen more rarely
# used formats: refused before a sample is decoded, fewer decoders, less attack surface.
ALLOWED_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "FLAC", "OGG", "MP3"})
MIN_SOURCE_RATE, MAX_SOURCE_RATE = 1_000, 768_000
# libsoxr's "high quality" recipe (its default): 20-bit precision (~120 dB stop-band rejection), linear
# phase, flat to ~91% of the lower Nyquist frequency. Resampling 5 s takes ~2 ms at HQ; VHQ (28-bit) costs
# ~20% more for nothing a model's mel spectrogram can see.
RESAMPLE_QUALITY = "HQ"
PREVIEW_RATE = 24_000
# libsndfile maps compression_level 0..1 to Vorbis quality 1..0: 0.9 is ~40 kbps mono at 24 kHz, so a 10 s
# preview is at most ~50 kB (noise; a tone ~15 kB, silence ~4 kB), encoded in ~40 ms. Vorbis encodes 5-10x
# faster than libsndfile's Opus at that size; Chromium plays both (checked: Chromium 156, <audio> and
# decodeAudioData).
PREVIEW_COMPRESSION = 0.9
_BLOCK_SAMPLES = 1 << 18  # samples per read over all channels: 1 MiB of float32, reused
_SF_COUNT_MAX = 0x7FFFFFFFFFFFFFFF  # libsndfile's "frame count unknown"
# What soundfile raises on bad data: LibsndfileError (a SoundFileError) for libsndfile's errors, plus the
# odd RuntimeError/ValueError/OverflowError from impossible header values.
_CORRUPT = (sf.SoundFileError, RuntimeError, ValueError, OverflowError, EOFError)
_FORMATS_HINT = "send WAV, FLAC, OGG (Vorbis or Opus), MP3 or AIFF"


@dataclass(frozen=True, eq=False)
class AudioClip:
    """Decoded audio: ``samples`` is mono float32 at ``sampling_rate`` (don't modify it in place: shared).

    Silence is a valid clip (all zeros). ``source_*`` describe the file as it was: its rate, channel count
    and libsndfile's format and subtype names (e.g. "WAV"/"PCM_24", "OGG"/"OPUS", "MP3"/"MPEG_LAYER_III").
    """

    samples: npt.NDArray[np.float32]
    sampling_rate: int
    source_rate: int
    source_channels: int
    source_format: str
    source_subtype: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sampling_rate


def decode_audio(
    raw: bytes,
    *,
    sampling_rate: int,
    max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
    max_bytes: int = DEFAULT_MAX_AUDIO_BYTES,
) -> AudioClip:
    """Decode ``raw`` into a mono clip at ``sampling_rate`` Hz.

    Raises :class:`FetchError`: ``too_large`` past ``max_bytes`` or ``max_seconds`` (by the header, before
    reading, or by what was read), ``undecodable`` for empty, unknown, corrupt or frameless data and
    formats outside :data:`ALLOWED_FORMATS`. Observes ``xmodal_audio_decode_seconds{outcome}`` and, for
    clips, ``xmodal_audio_clip_seconds``.
    """
    if sampling_rate <= 0 or max_seconds <= 0 or max_bytes <= 0:
        raise ValueError(f"bad limits: {sampling_rate=} {max_seconds=} {max_bytes=}")
    t0 = time.perf_counter()
    outcome = "error"  # an unexpected exception: a bug, not a dead letter
    try:
        clip = _decode(raw, sampling_rate, max_seconds, max_bytes)
    except FetchError as exc:
        outcome = exc.reason.value
        raise
    else:
        outcome = "ok"
        metrics.AUDIO_CLIP_SECONDS.observe(clip.duration_s)
        return clip
    finally:
        metrics.AUDIO_DECODE_SECONDS.labels(outcome).observe(time.perf_counter() - t0)


def _decode(raw: bytes, sampling_rate: int, max_seconds: float, max_bytes: int) -> AudioClip:
    if not raw:
        raise FetchError(Reason.undecodable, f"audio content is empty (0 bytes); {_FORMATS_HINT}")
    if len(raw) > max_bytes:
        raise FetchError(
            Reason.too_large,
            f"audio file of {len(raw)} bytes; limit {max_bytes} (XMODAL_FETCH__MAX_AUDIO_BYTES); send a "
            "shorter clip or a compressed one (FLAC, OGG, MP3)",
        )
    try:
        src = sf.SoundFile(io.BytesIO(raw))  # parses the header only
    except _CORRUPT as exc:
        raise FetchError(Reason.undecodable, _unreadable(raw, exc)) from exc
    with src:
        name = f"{src.format}/{src.subtype}"
        _check_header(src, name, max_seconds)
        try:
            samples = _read_mono(src, name, sampling_rate, max_seconds)
        except _CORRUPT as exc:
            raise FetchError(Reason.undecodable, f"corrupt {name} audio: {_detail(exc)}") from exc
        return AudioClip(samples, sampling_rate, src.samplerate, src.channels, src.format, src.subtype)


def _check_header(src: sf.SoundFile, name: str, max_seconds: float) -> None:
    if src.format not in ALLOWED_FORMATS:
        raise FetchError(Reason.undecodable, f"{name} audio is not accepted; {_FORMATS_HINT}")
    rate, frames = src.samplerate, src.frames
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise FetchError(
            Reason.undecodable,
            f"{name} audio with a sample rate of {rate} Hz; accepted {MIN_SOURCE_RATE}-{MAX_SOURCE_RATE} Hz",
        )
    if src.channels < 1:
        raise FetchError(Reason.undecodable, f"{name} audio with {src.channels} channels")
    if frames != _SF_COUNT_MAX and frames > _frame_limit(max_seconds, rate):
        raise FetchError(Reason.too_large, _too_long(name, frames / rate, max_seconds, "its header says"))


def _read_mono(src: sf.SoundFile, name: str, sampling_rate: int, max_seconds: float) -> npt.NDArray[np.float32]:
    """Read block by block, each mixed down and resampled at once: memory stays near the output's size."""
    rate, channels = src.samplerate, src.channels
    limit = _frame_limit(max_seconds, rate)
    block = np.empty((max(1, _BLOCK_SAMPLES // channels), channels), dtype=np.float32)
    # The mean of the channels as a matrix-vector product: 40x faster than ndarray.mean(axis=1) here.
    mean_of_channels = np.full(channels, 1.0 / channels, dtype=np.float32)
    resampler = (
        None if rate == sampling_rate
        else soxr.ResampleStream(rate, sampling_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    )
    parts: list[npt.NDArray[np.float32]] = []
    total = 0
    # Every pass reads at least one frame or ends, and at most limit + 1 frames are read in all: no header
    # value can make this loop run longer or allocate more.
    while got := len(chunk := src.read(min(len(block), limit + 1 - total), out=block)):
        total += got
        if total > limit:
            raise FetchError(Reason.too_large, _too_long(name, total / rate, max_seconds, "it holds more than"))
        mono = chunk @ mean_of_channels if channels > 1 else chunk[:, 0].copy()
        # NaN or inf in float files would spread over the whole clip through the resampling filter.
        np.nan_to_num(mono, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        parts.append(mono if resampler is None else resampler.resample_chunk(mono))
    if total == 0:
        raise FetchError(Reason.undecodable, f"{name} audio holds no audio frames (header only or cut off)")
    if resampler is not None:
        parts.append(resampler.resample_chunk(np.empty(0, dtype=np.float32), last=True))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _frame_limit(max_seconds: float, rate: int) -> int:
    return math.floor(max_seconds * rate)


def _too_long(name: str, seconds: float, max_seconds: float, how: str) -> str:
    return (
        f"{name} audio too long: {how} {seconds:.1f} s; limit {max_seconds:g} s "
        "(XMODAL_FETCH__MAX_AUDIO_SECONDS); cut it into shorter clips"
    )


def _unreadable(raw: bytes, exc: Exception) -> str:
    head = raw[:512]
    looks_like_text = head.isascii() and all(b >= 0x20 or b in b"\t\r\n" for b in head)
    what = "text, not audio" if looks_like_text else "not a readable audio file"
    return f"{what} ({len(raw)} bytes; libsndfile: {_detail(exc)}); {_FORMATS_HINT}"


def _detail(exc: Exception) -> str:
    # LibsndfileError's str() starts with "Error opening <_io.BytesIO object at 0x...>:": keep the reason.
    return str(getattr(exc, "error_string", None) or exc)


def audio_preview(clip: AudioClip, *, seconds: float = 10.0) -> bytes:
    """The first ``seconds`` of ``clip`` as OGG/Vorbis, mono, 24 kHz, for a browser's ``<audio>`` element.

    About 40 kbps: at most ~50 kB for 10 s (a few kB for silence).

    >>> import numpy as np
    >>> clip = AudioClip(np.zeros(48000, np.float32), 48000, 48000, 1, "WAV", "FLOAT")
    >>> audio_preview(clip, seconds=1.0)[:4]
    b'OggS'
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, not {seconds}")
    head = clip.samples[: max(1, math.ceil(seconds * clip.sampling_rate))]
    if clip.sampling_rate != PREVIEW_RATE:
        head = soxr.resample(head, clip.sampling_rate, PREVIEW_RATE, quality=RESAMPLE_QUALITY)
    head = np.clip(head, -1.0, 1.0)  # float data past full scale would wrap or distort in the encoder
    buf = io.BytesIO()
    sf.write(buf, head, PREVIEW_RATE, format="OGG", subtype="VORBIS", compression_level=PREVIEW_COMPRESSION)
    return buf.getvalue()


def preload() -> None:
    """Run each decoder, the resampler and the preview encoder once now, outside the metrics (~30 ms).

    Optional: first calls measured only a few ms slower than later ones; a worker calls it at start-up, like
    :func:`services.fetch.images.preload_codecs`, so that a broken libsndfile fails there and not on an event.
    """
    tone = np.sin(np.linspace(0.0, 200.0, 4800, dtype=np.float32))
    for fmt, subtype in (("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("OGG", "OPUS"),
                         ("MP3", "MPEG_LAYER_III")):
        buf = io.BytesIO()
        sf.write(buf, tone, 48000, format=fmt, subtype=subtype)
        audio_preview(_decode(buf.getvalue(), 44100, 1.0, DEFAULT_MAX_AUDIO_BYTES), seconds=0.1)
