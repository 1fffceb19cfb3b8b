"""The sounds generator: deterministic, labelled, split-aware, with captions that match the labels."""

from __future__ import annotations

import random

import numpy as np
import pytest

from services.embedding.sounds import world


def _band_energy(audio: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / world.SAMPLING_RATE)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum() / spectrum.sum())


def test_same_seed_same_samples_other_split_other_samples() -> None:
    a = world.generate(8, seed=3, split="train")
    b = world.generate(8, seed=3, split="train")
    val = world.generate(8, seed=3, split="val")
    assert [(s.sound, s.loudness, s.caption) for s in a] == [(s.sound, s.loudness, s.caption) for s in b]
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b, strict=True))
    assert not any(len(x.audio) == len(y.audio) and np.array_equal(x.audio, y.audio)
                   for x, y in zip(a, val, strict=True))
    assert {s.split for s in a} == {"train"} and {s.split for s in val} == {"val"}


def test_balanced_set_has_every_class_and_the_named_examples() -> None:
    samples = world.generate_balanced(2, seed=0, split="val")
    assert len(samples) == 2 * len(world.sounds()) == 56
    labels = {s.label for s in samples}
    assert {"a low hum", "a high buzz", "a low rasp", "three short high beeps", "one long low beep",
            "a rising siren", "a falling siren", "white noise", "pink noise", "brown noise", "silence"} <= labels
    assert len(labels) == len(world.sounds())


def test_clips_are_mono_float32_of_one_to_two_seconds_in_range() -> None:
    for s in world.generate(40, seed=5, split="val"):
        assert s.audio.dtype == np.float32 and s.audio.ndim == 1
        assert world.MIN_SECONDS <= len(s.audio) / world.SAMPLING_RATE <= world.MAX_SECONDS
        assert np.abs(s.audio).max() <= 1.0


def test_loudness_and_silence_are_audible_in_the_level() -> None:
    def level(sound: world.Sound, loudness: world.Loudness) -> float:
        audio = world.render(random.Random(1), sound, loudness)
        return float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2)))

    tone = world.Tone("low", "sine")
    assert level(tone, "loud") - level(tone, "quiet") > 8
    assert level(world.Silence(), "silent") < level(tone, "quiet") - 15


def test_pitch_colour_and_direction_show_in_the_spectrum() -> None:
    rng = random.Random(2)
    low, high = (world.render(rng, world.Tone(p, "sine"), "loud") for p in ("low", "high"))
    assert _band_energy(low, 0, 400) > 0.9 and _band_energy(high, 600, 2500) > 0.9
    buzz = world.render(rng, world.Tone("low", "square"), "loud")
    assert _band_energy(buzz, 400, 8000) > 0.05  # harmonics a sine lacks
    white, brown = (world.render(rng, world.Noise(c), "loud") for c in ("white", "brown"))
    assert _band_energy(white, 2000, 8000) > 0.5 and _band_energy(brown, 0, 500) > 0.9
    rising = world.render(rng, world.Siren("rising"), "loud")
    half = len(rising) // 2
    assert _band_energy(rising[half:], 1000, 8000) > _band_energy(rising[:half], 1000, 8000)


def test_beeps_are_counted_in_the_envelope() -> None:
    rng = random.Random(4)
    for count in world.COUNTS:
        audio = world.render(rng, world.Beeps(count, "short", "high"), "loud")
        frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)  # 10 ms
        on = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > 0.02
        assert int(np.sum(on[1:] & ~on[:-1]) + on[0]) == count


def test_captions_name_only_true_attributes() -> None:
    rng = random.Random(0)
    captions = world.all_captions()
    for sound in world.sounds():
        loudness: world.Loudness = "silent" if isinstance(sound, world.Silence) else "quiet"
        true_of_clip = world.attributes(sound, loudness)
        for _ in range(30):
            text, named = world.random_caption(rng, sound, loudness)
            assert captions[text] == named and world.describes(named, true_of_clip), text
    assert world.canonical_caption(world.Beeps(1, "long", "low")) == "one long low beep"
    assert world.canonical_caption(world.Tone("high", "square")) == "a high buzz"
    assert world.canonical_caption(world.Silence()) == "silence"
    assert not world.describes(captions["a loud sound"], world.attributes(world.Silence(), "silent"))
    assert world.describes(captions["a low sound"], world.attributes(world.Beeps(2, "long", "low"), "loud"))


@pytest.mark.parametrize(("named", "expected"), [
    ({"kind": "beeps", "count": "three"}, True), ({"kind": "beeps"}, True), ({"pitch": "high"}, True),
    ({"loudness": "loud"}, True), ({"kind": "beeps", "count": "two"}, False), ({"kind": "tone"}, False),
    ({"loudness": "quiet"}, False),
])
def test_describes(named: dict[str, str], expected: bool) -> None:
    assert world.describes(named, world.attributes(world.Beeps(3, "short", "high"), "loud")) is expected
