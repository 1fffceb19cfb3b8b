"""Audio decoding: every format, rate, depth and channel count to mono at the model's rate, and bad audio
(corrupt, truncated, empty, too long, lying headers, not audio at all) as the right dead-letter reason.

Files are made here with soundfile; lying headers are made by patching a real file's size fields.
"""

from __future__ import annotations

import asyncio
import io
import struct
import tracemalloc
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf  # type: ignore[import-untyped]
from prometheus_client import REGISTRY

from schemas.dead_letter import Reason
from services.fetch import FetchError
from services.fetch.audio import PREVIEW_RATE, AudioClip, audio_preview, decode_audio, preload

pytestmark = pytest.mark.timeout(30)  # decoding never hangs: a stuck decoder fails the test
RATE = 48_000  # the model's rate (CLAP)
Samples = npt.NDArray[np.float32]


def tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5, channels: int = 1) -> Samples:
    t = np.arange(round(seconds * rate)) / rate
    mono = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def encode(samples: Samples, rate: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def decode(raw: bytes, rate: int = RATE, max_seconds: float = 60.0, max_bytes: int = 1 << 26) -> AudioClip:
    clip = decode_audio(raw, sampling_rate=rate, max_seconds=max_seconds, max_bytes=max_bytes)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.sampling_rate == rate
    assert np.isfinite(clip.samples).all()
    return clip


def decode_error(
    raw: bytes, reason: Reason, *, says: tuple[str, ...], max_seconds: float = 60.0, max_bytes: int = 1 << 26
) -> FetchError:
    with pytest.raises(FetchError) as info:
        decode(raw, max_seconds=max_seconds, max_bytes=max_bytes)
    err = info.value
    assert err.reason is reason, err
    assert not err.retriable
    for words in says:  # what was wrong and what to do
        assert words in str(err), f"{words!r} not in {err}"
    assert "BytesIO object at" not in str(err)  # no Python noise in a message meant for people
    return err


def clip_or_error(raw: bytes) -> AudioClip | FetchError:
    """Either outcome is fine for some damage; anything else raised (a crash) fails the test."""
    try:
        return decode(raw)
    except FetchError as exc:
        return exc


def peak_hz(samples: Samples, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def rms(samples: Samples) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


# --- formats, depths, rates, channels ------------------------------------------------------------

LOSSLESS = [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "PCM_U8"), ("WAV", "FLOAT"),
            ("WAV", "DOUBLE"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24"), ("AIFF", "PCM_16"), ("RF64", "PCM_16")]
LOSSY = [("OGG", "VORBIS"), ("OGG", "OPUS"), ("MP3", "MPEG_LAYER_III")]


@pytest.mark.parametrize(("fmt", "subtype"), LOSSLESS + LOSSY)
def test_formats_decode_to_the_same_tone(fmt: str, subtype: str) -> None:
    assert subtype in sf.available_subtypes(fmt)  # libsndfile >= 1.1 in the wheel: MP3 and Opus included
    src_rate = 48_000 if subtype == "OPUS" else 44_100  # Opus runs at 48 kHz
    clip = decode(encode(tone(1.0, src_rate, channels=2), src_rate, fmt, subtype))
    assert (clip.source_format, clip.source_subtype) == (fmt, subtype)
    assert (clip.source_rate, clip.source_channels) == (src_rate, 2)
    assert clip.duration_s == pytest.approx(1.0, abs=0.002 if (fmt, subtype) in LOSSLESS else 0.06)
    assert peak_hz(clip.samples, RATE) == pytest.approx(440, abs=1.5)
    assert rms(clip.samples[2400:-2400]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize("src_rate", [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 88_200, 96_000,
                                      192_000])
@pytest.mark.parametrize("target", [16_000, 48_000])
def test_any_rate_is_resampled_to_the_target_rate(src_rate: int, target: int) -> None:
    clip = decode(encode(tone(2.0, src_rate, freq=440.0), src_rate, "WAV", "PCM_16"), rate=target)
    assert clip.source_rate == src_rate
    assert len(clip.samples) == pytest.approx(2 * target, abs=2)  # soxr keeps the length: no drift
    assert peak_hz(clip.samples, target) == pytest.approx(440, abs=0.6)  # 0.5 Hz bins: the pitch stays
    assert rms(clip.samples[target // 10: -target // 10]) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_8_channels_at_192_khz_24_bit_are_mixed_down_by_their_mean() -> None:
    # channel k carries the tone at amplitude k/8: their mean has amplitude (0+1+...+7)/8/8 = 0.4375
    base = tone(1.0, 192_000, amp=1.0)
    eight = np.stack([base * (k / 8) for k in range(8)], axis=1).astype(np.float32)
    clip = decode(encode(eight, 192_000, "WAV", "PCM_24"))
    assert (clip.source_rate, clip.source_channels, clip.source_subtype) == (192_000, 8, "PCM_24")
    assert clip.duration_s == pytest.approx(1.0, abs=1e-4)
    assert peak_hz(clip.samples, RATE) == pytest.approx(440, abs=1.5)
    assert rms(clip.samples[4800:-4800]) == pytest.approx(0.4375 / np.sqrt(2), rel=0.01)


def test_opposite_channels_cancel_and_one_sided_ones_halve() -> None:
    t = tone(0.5, RATE, amp=0.8)
    cancel = decode(encode(np.stack([t, -t], axis=1), RATE, "WAV", "FLOAT"))
    assert np.abs(cancel.samples).max() == 0.0
    left_only = decode(encode(np.stack([t, np.zeros_like(t)], axis=1), RATE, "WAV", "FLOAT"))
    np.testing.assert_allclose(left_only.samples, t / 2, atol=1e-7)


@pytest.mark.parametrize(("subtype", "step"), [("PCM_24", 2.0**-23), ("PCM_16", 2.0**-15), ("PCM_U8", 2.0**-7)])
def test_bit_depths_keep_their_precision_at_the_source_rate(subtype: str, step: float) -> None:
    # At the source rate nothing is resampled: what comes out is the file's samples, scaled to [-1, 1).
    values = np.array([0.0, 0.25, -0.25, 0.5, -0.5, 0.75, -1.0, 1.0 - step, step, -step], dtype=np.float32)
    clip = decode(encode(values, RATE, "WAV", subtype))
    np.testing.assert_allclose(clip.samples, values, atol=step / 2)
    assert clip.samples[0] == 0.0  # unsigned 8-bit silence (128) is 0.0, not -1.0 or 0.5


def test_silence_is_a_valid_clip() -> None:
    for fmt, subtype in [("WAV", "PCM_16"), ("WAV", "PCM_U8"), ("FLAC", "PCM_24"), ("OGG", "VORBIS")]:
        clip = decode(encode(np.zeros((44_100 * 2, 2), np.float32), 44_100, fmt, subtype))
        assert clip.duration_s == pytest.approx(2.0, abs=0.01)
        assert np.abs(clip.samples).max() < 1e-4, (fmt, subtype)


def test_a_single_frame_is_a_clip() -> None:
    clip = decode(encode(np.array([0.5], np.float32), RATE, "WAV", "PCM_16"))
    assert len(clip.samples) == 1


def test_nan_and_inf_in_float_files_become_silence_not_a_poisoned_clip() -> None:
    samples = tone(0.5, 44_100)
    samples[100:110] = [np.nan, np.inf, -np.inf] * 3 + [np.nan]
    clip = decode(encode(samples, 44_100, "WAV", "FLOAT"))  # resampled: one NaN would spread everywhere
    assert peak_hz(clip.samples, RATE) == pytest.approx(440, abs=2.5)


# --- bad input -----------------------------------------------------------------------------------

def wav(seconds: float = 1.0, rate: int = 44_100, channels: int = 2) -> bytes:
    return encode(tone(seconds, rate, channels=channels), rate, "WAV", "PCM_16")


def test_zero_bytes() -> None:
    decode_error(b"", Reason.undecodable, says=("empty (0 bytes)", "send WAV"))


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    decode_error(rng.bytes(int(rng.integers(1, 20_000))), Reason.undecodable,
                 says=("not a readable audio file", "send WAV"))


def test_random_bytes_behind_an_mp3_sync_word() -> None:
    raw = b"\xff\xfb\x90\x00" + np.random.default_rng(0).bytes(8192)  # MPEG frame sync: libsndfile tries MP3
    decode_error(raw, Reason.undecodable, says=("not a readable audio file", "send WAV"))


@pytest.mark.parametrize("text", ["hello, I am a text file renamed to clip.wav\n" * 20,
                                  "<!doctype html><html><body>404 Not Found</body></html>", "RIFF"])
def test_text_renamed_wav(text: str) -> None:
    decode_error(text.encode(), Reason.undecodable, says=("text, not audio", "send WAV"))


def test_corrupt_header() -> None:
    raw = bytearray(wav())
    raw[8:16] = b"JUNKJUNK"  # "WAVEfmt " gone: a RIFF of nothing known
    decode_error(bytes(raw), Reason.undecodable, says=("not a readable audio file", "send WAV"))


def test_a_file_cut_inside_its_header() -> None:
    decode_error(wav()[:30], Reason.undecodable, says=("not a readable audio file", "data"))


def test_a_header_without_samples() -> None:
    raw = wav()
    header = raw[: raw.index(b"data") + 8]
    decode_error(header, Reason.undecodable, says=("WAV/PCM_16", "no audio frames"))


def test_a_truncated_wav_decodes_what_is_there() -> None:
    clip = decode(wav(2.0)[: 44 + 44_100 * 4])  # header + 1 s of 16-bit stereo
    assert clip.duration_s == pytest.approx(1.0, abs=0.001)
    assert peak_hz(clip.samples, RATE) == pytest.approx(440, abs=1.5)


def test_a_truncated_mp3_decodes_up_to_the_cut() -> None:
    raw = encode(tone(2.0, 48_000, channels=2), 48_000, "MP3", "MPEG_LAYER_III")
    durations = [decode(raw[: int(len(raw) * fraction)]).duration_s for fraction in (0.3, 0.5, 0.9)]
    assert durations == sorted(durations)
    assert durations == pytest.approx([0.6, 1.0, 1.8], abs=0.25)  # the first ~10% are headers
    # too little left for the decoder to find its frames: libsndfile's (odd) message, and what to send
    decode_error(raw[:400], Reason.undecodable, says=("not a readable audio file", "send WAV"))


@pytest.mark.parametrize("subtype", ["OPUS", "VORBIS"])
def test_a_truncated_ogg_decodes_its_complete_pages_or_is_undecodable(subtype: str) -> None:
    raw = encode(tone(2.0, 48_000, channels=2), 48_000, "OGG", subtype)
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.95):
        result = clip_or_error(raw[: int(len(raw) * fraction)])
        if isinstance(result, FetchError):  # the cut leaves no complete audio page
            assert result.reason is Reason.undecodable
            assert "malformed" in str(result) or "no audio frames" in str(result)
        else:
            assert 0.5 < result.duration_s < 2.0
    assert decode(raw[: int(len(raw) * 0.95)]).duration_s > 1.0


def test_a_truncated_flac_is_undecodable() -> None:
    raw = encode(tone(2.0, 44_100), 44_100, "FLAC", "PCM_16")
    decode_error(raw[: len(raw) // 2], Reason.undecodable, says=("corrupt FLAC/PCM_16 audio", "lost sync"))


def patch_wav_sizes(raw: bytes, data_bytes: int) -> bytes:
    """A RIFF/WAVE whose RIFF and data chunk sizes claim ``data_bytes`` of samples (a test fixture)."""
    out = bytearray(raw)
    data = raw.index(b"data")
    struct.pack_into("<I", out, 4, min(0xFFFFFFFF, data + data_bytes))  # file size - 8
    struct.pack_into("<I", out, data + 4, min(0xFFFFFFFF, data_bytes))
    return bytes(out)


def patch_flac_total_samples(raw: bytes, total: int) -> bytes:
    """A FLAC whose STREAMINFO claims ``total`` samples: the low 36 bits of the 64-bit word at byte 18."""
    assert raw[:4] == b"fLaC" and raw[4] & 0x7F == 0  # STREAMINFO comes first
    (word,) = struct.unpack_from(">Q", raw, 18)
    out = bytearray(raw)
    struct.pack_into(">Q", out, 18, (word & ~((1 << 36) - 1)) | total)
    return bytes(out)


@pytest.fixture
def peak_memory() -> Iterator[Callable[[], float]]:
    """Peak Python + numpy allocation in MB since the test started (numpy reports to tracemalloc)."""
    tracemalloc.start()
    yield lambda: tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()


def test_a_wav_header_claiming_10_hours_decodes_its_real_second(peak_memory: Callable[[], float]) -> None:
    # 16 kHz 16-bit mono: 10 h is 1.15 GB of data, which a 32-bit RIFF size can say. libsndfile sizes the
    # data by the file instead (as it must for streaming writers' 0xFFFFFFFF sizes).
    lying = patch_wav_sizes(wav(1.0, rate=16_000, channels=1), 10 * 3600 * 16_000 * 2)
    assert sf.info(io.BytesIO(lying)).frames == 16_000
    clip = decode(lying, max_seconds=600)
    assert clip.duration_s == pytest.approx(1.0, abs=0.001)
    assert peak_memory() < 20  # 10 h at 48 kHz would be 6.9 GB of float32


def test_a_wav_with_streaming_sizes_decodes() -> None:
    streamed = patch_wav_sizes(wav(1.0), 0xFFFFFFFF)  # what ffmpeg writes to a pipe
    assert decode(streamed).duration_s == pytest.approx(1.0, abs=0.001)


def test_a_flac_header_claiming_10_hours_is_refused_before_reading(peak_memory: Callable[[], float]) -> None:
    lying = patch_flac_total_samples(encode(tone(1.0, 44_100), 44_100, "FLAC", "PCM_16"), 10 * 3600 * 44_100)
    decode_error(lying, Reason.too_large, says=("header says 36000.0 s", "limit 600 s", "MAX_AUDIO_SECONDS",
                                                "shorter clips"), max_seconds=600)
    assert peak_memory() < 5  # not a sample was read


def test_a_header_claiming_less_than_the_data_holds_stops_at_its_count() -> None:
    short = patch_flac_total_samples(encode(tone(3.0, 44_100), 44_100, "FLAC", "PCM_16"), 44_100)
    assert decode(short, max_seconds=2).duration_s == pytest.approx(1.0, abs=0.001)


def test_over_max_seconds_by_the_header() -> None:
    decode_error(wav(3.0), Reason.too_large, says=("WAV/PCM_16", "header says 3.0 s", "limit 2 s"), max_seconds=2)


def test_over_max_seconds_by_what_is_read_when_the_header_does_not_say() -> None:
    unknown_length = patch_flac_total_samples(encode(tone(3.0, 44_100), 44_100, "FLAC", "PCM_16"), 0)
    decode_error(unknown_length, Reason.too_large, says=("holds more than 2.0 s", "limit 2 s"), max_seconds=2)


def test_exactly_max_seconds_is_accepted() -> None:
    assert decode(wav(2.0), max_seconds=2).duration_s == pytest.approx(2.0, abs=1e-4)


def test_over_the_byte_limit() -> None:
    raw = wav(1.0)
    decode_error(raw, Reason.too_large, says=(f"{len(raw)} bytes", "limit 1000", "MAX_AUDIO_BYTES"),
                 max_bytes=1000)


@pytest.mark.parametrize("fmt", ["AU", "VOC", "PAF", "CAF"])
def test_formats_outside_the_allowed_list(fmt: str) -> None:
    decode_error(encode(tone(0.1, 8_000), 8_000, fmt, "PCM_16"), Reason.undecodable,
                 says=(f"{fmt}/PCM_16 audio is not accepted", "send WAV"))


@pytest.mark.parametrize("rate", [1, 500, 800_000])
def test_absurd_sample_rates(rate: int) -> None:
    decode_error(encode(np.zeros(100, np.float32), rate, "WAV", "PCM_16"), Reason.undecodable,
                 says=(f"sample rate of {rate} Hz", "accepted 1000-768000 Hz"))


@pytest.mark.parametrize(("fmt", "subtype"), LOSSLESS[::3] + LOSSY)
def test_damaged_files_become_a_clip_or_a_dead_letter_never_a_crash(fmt: str, subtype: str) -> None:
    src_rate = 48_000 if subtype == "OPUS" else 22_050
    raw = encode(tone(1.0, src_rate, channels=2), src_rate, fmt, subtype)
    rng = np.random.default_rng(7)
    for _ in range(12):
        damaged = bytearray(raw[: int(rng.integers(1, len(raw) + 1))])
        for pos in rng.integers(0, len(damaged), size=int(rng.integers(0, 6))):
            damaged[pos] = int(rng.integers(0, 256))
        result = clip_or_error(bytes(damaged))
        if isinstance(result, FetchError):
            assert result.reason in {Reason.undecodable, Reason.too_large}
        else:
            assert result.duration_s <= 1.1


async def test_bad_files_do_not_affect_the_others_decoded_at_the_same_time() -> None:
    good = wav(0.5)
    batch = [good, b"", b"not audio", good[:40], good, np.random.default_rng(1).bytes(5000), good]
    results = await asyncio.gather(*(asyncio.to_thread(decode, raw) for raw in batch), return_exceptions=True)
    clips = [r for r in results if isinstance(r, AudioClip)]
    errors = [r for r in results if isinstance(r, FetchError)]
    assert len(clips) == 3 and len(errors) == 4
    for clip in clips:
        np.testing.assert_array_equal(clip.samples, clips[0].samples)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bad limits"):
        decode_audio(wav(), sampling_rate=0, max_seconds=1)


# --- metrics, preview, preload -------------------------------------------------------------------

def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_decode_time_and_clip_duration_are_observed() -> None:
    before = {o: sample("xmodal_audio_decode_seconds_count", {"outcome": o}) for o in ("ok", "too_large",
                                                                                       "undecodable")}
    clip_sum = sample("xmodal_audio_clip_seconds_sum")
    decode(wav(1.5))
    decode_error(b"", Reason.undecodable, says=())
    decode_error(wav(3.0), Reason.too_large, says=(), max_seconds=1)
    for outcome, count in before.items():
        assert sample("xmodal_audio_decode_seconds_count", {"outcome": outcome}) == count + 1
    assert sample("xmodal_audio_clip_seconds_sum") == pytest.approx(clip_sum + 1.5)


def test_preview_is_a_small_ogg_vorbis_of_the_first_seconds() -> None:
    noisy = (tone(30.0, RATE, amp=0.3) + 0.1 * np.random.default_rng(0).standard_normal(30 * RATE)).astype(
        np.float32
    )
    clip = AudioClip(noisy, RATE, 44_100, 2, "WAV", "PCM_16")
    preview = audio_preview(clip)
    assert len(preview) < 60_000  # ~40 kbps; noise is the worst case
    info = sf.info(io.BytesIO(preview))
    assert (info.format, info.subtype, info.channels, info.samplerate) == ("OGG", "VORBIS", 1, PREVIEW_RATE)
    assert info.duration == pytest.approx(10.0, abs=0.01)
    back = decode(preview, rate=PREVIEW_RATE)
    assert peak_hz(back.samples, PREVIEW_RATE) == pytest.approx(440, abs=0.5)


def test_preview_of_a_short_loud_or_silent_clip() -> None:
    loud = AudioClip(tone(0.5, 16_000, amp=4.0), 16_000, 16_000, 1, "WAV", "FLOAT")  # past full scale
    assert sf.info(io.BytesIO(audio_preview(loud))).duration == pytest.approx(0.5, abs=0.01)
    silent = audio_preview(AudioClip(np.zeros(10 * RATE, np.float32), RATE, RATE, 1, "WAV", "PCM_16"))
    assert len(silent) < 10_000
    with pytest.raises(ValueError, match="positive"):
        audio_preview(loud, seconds=0)


def test_preload_runs_every_codec() -> None:
    preload()
