"""Synthetic sounds and their captions: the training and test data of the shipped sounds model (a small CLAP).

Short mono clips (1-2 s at 16 kHz) of steady tones (a sine hum, a square buzz, a sawtooth rasp; low or high),
beeps (one to four, short or long, low or high), rising and falling sirens, white / pink / brown noise and
silence, each quiet or loud. A clip's class is what its canonical caption names ("a low hum", "three short
high beeps", "a rising siren", "white noise", "silence"); loudness is an attribute on top of the class.

Everything comes from a seed, so a dataset is reproducible and a held-out set is just another seed (the
``split`` takes part in the seed, so ``val`` clips never repeat ``train`` ones). numpy only.

>>> sample = generate(1, seed=7, split="val")[0]
>>> sample.audio.dtype, sample.split, MIN_SECONDS <= len(sample.audio) / SAMPLING_RATE <= MAX_SECONDS
(dtype('float32'), 'val', True)
>>> canonical_caption(Beeps(count=3, length="short", pitch="high"))
'three short high beeps'
>>> describes({"kind": "beeps", "count": "three"}, attributes(Beeps(3, "short", "high"), "loud"))
True
"""

from __future__ import annotations

import math
import random
import string
import zlib
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt

Split = Literal["train", "val"]
Pitch = Literal["low", "high"]
Wave = Literal["sine", "square", "sawtooth"]
BeepLength = Literal["short", "long"]
Direction = Literal["rising", "falling"]
Colour = Literal["white", "pink", "brown"]
Loudness = Literal["quiet", "loud", "silent"]  # "silent" is silence's, and only silence's
Audio = npt.NDArray[np.float32]

SAMPLING_RATE = 16_000
MIN_SECONDS, MAX_SECONDS = 1.0, 2.0

PITCHES: tuple[Pitch, ...] = ("low", "high")
WAVES: tuple[Wave, ...] = ("sine", "square", "sawtooth")
WAVE_NOUNS: dict[str, str] = {"sine": "hum", "square": "buzz", "sawtooth": "rasp"}  # by Wave
COUNTS: tuple[int, ...] = (1, 2, 3, 4)
COUNT_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}
BEEP_LENGTHS: tuple[BeepLength, ...] = ("short", "long")
DIRECTIONS: tuple[Direction, ...] = ("rising", "falling")
COLOURS: tuple[Colour, ...] = ("white", "pink", "brown")
LOUDNESSES: tuple[Loudness, ...] = ("quiet", "loud")  # of anything but silence

# Fundamentals (Hz), far enough apart that "low" and "high" survive a 32-band mel spectrogram.
_TONE_HZ: dict[Pitch, tuple[float, float]] = {"low": (100.0, 250.0), "high": (800.0, 1800.0)}
_BEEP_HZ: dict[Pitch, tuple[float, float]] = {"low": (250.0, 500.0), "high": (1500.0, 3000.0)}
_BEEP_S: dict[BeepLength, tuple[float, float]] = {"short": (0.06, 0.11), "long": (0.22, 0.30)}
_BEEP_GAP_S = (0.11, 0.17)
_SIREN_HZ = ((300.0, 500.0), (1500.0, 3000.0))  # the ranges of the sweep's low and high ends
# Levels (dB of full scale, RMS while sounding): 12 dB between quiet and loud, a faint floor under all.
_LEVEL_DB: dict[Loudness, tuple[float, float]] = {"quiet": (-44.0, -34.0), "loud": (-22.0, -14.0)}
_FLOOR_DB = (-75.0, -62.0)
_HARMONICS_BELOW_HZ = 7000.0  # band-limited square and sawtooth: no aliasing under Nyquist (8 kHz)
_NOISE_SLOPE: dict[Colour, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power ~ 1 / f^slope


@dataclass(frozen=True)
class Tone:
    """A steady tone: a sine "hum", a square "buzz" or a sawtooth "rasp", low or high."""

    pitch: Pitch
    wave: Wave
    kind: ClassVar[str] = "tone"


@dataclass(frozen=True)
class Beeps:
    """``count`` beeps of one pitch and length, with gaps between them."""

    count: int
    length: BeepLength
    pitch: Pitch
    kind: ClassVar[str] = "beeps"


@dataclass(frozen=True)
class Siren:
    """A tone sweeping up ("rising") or down ("falling") over the clip."""

    direction: Direction
    kind: ClassVar[str] = "siren"


@dataclass(frozen=True)
class Noise:
    """White, pink (power ~ 1/f) or brown (power ~ 1/f^2) noise."""

    colour: Colour
    kind: ClassVar[str] = "noise"


@dataclass(frozen=True)
class Silence:
    """Nothing but a faint noise floor."""

    kind: ClassVar[str] = "silence"


Sound = Tone | Beeps | Siren | Noise | Silence


@dataclass(frozen=True, eq=False)
class SoundSample:
    """One generated clip with the class and loudness it was made for, and the caption drawn for it."""

    audio: Audio
    sound: Sound
    loudness: Loudness
    split: Split
    caption: str

    @property
    def label(self) -> str:
        """The clip's class: its canonical caption."""
        return canonical_caption(self.sound)


def sounds() -> list[Sound]:
    """Every class, in a fixed order."""
    return [
        *(Tone(p, w) for w in WAVES for p in PITCHES),
        *(Beeps(c, length, p) for c in COUNTS for length in BEEP_LENGTHS for p in PITCHES),
        *(Siren(d) for d in DIRECTIONS),
        *(Noise(c) for c in COLOURS),
        Silence(),
    ]


def attributes(sound: Sound, loudness: Loudness) -> dict[str, str]:
    """What is true of a clip, as words: its kind, its class's attributes and its loudness."""
    words: dict[str, str] = {"kind": sound.kind, "loudness": loudness}
    if isinstance(sound, Tone):
        words.update(pitch=sound.pitch, wave=sound.wave)
    elif isinstance(sound, Beeps):
        words.update(count=COUNT_WORDS[sound.count], length=sound.length, pitch=sound.pitch)
    elif isinstance(sound, Siren):
        words.update(direction=sound.direction)
    elif isinstance(sound, Noise):
        words.update(colour=sound.colour)
    return words


def describes(named: dict[str, str], true_of_clip: dict[str, str]) -> bool:
    """Whether a caption naming ``named`` attributes is true of a clip with attributes ``true_of_clip``."""
    return all(true_of_clip.get(k) == v for k, v in named.items())


# Caption templates by kind. A template names the kind (every one of a kind's list does) plus the attributes
# of its fields: {noun} names the wave, {beeps} is only the plural of {count}. The first is canonical.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "tone": (
        "a {pitch} {noun}", "a {pitch} pitched {noun}", "a {pitch} {wave} wave", "the sound of a {pitch} {noun}",
        "a {loudness} {pitch} {noun}", "a {loudness} {pitch} {wave} wave",
        "a {noun}", "a {wave} wave", "a steady {noun}", "a {pitch} tone", "a steady tone",
    ),
    "beeps": (
        "{count} {length} {pitch} {beeps}", "{count} {length} {pitch} pitched {beeps}",
        "the sound of {count} {length} {pitch} {beeps}", "{count} {loudness} {length} {pitch} {beeps}",
        "{count} {beeps}", "{count} {length} {beeps}", "{count} {pitch} {beeps}", "{length} {pitch} beeps",
        "{pitch} pitched beeping", "{length} beeps", "beeping",
    ),
    "siren": (
        "a {direction} siren", "a {direction} chirp", "a {direction} sweep", "the sound of a {direction} siren",
        "a {loudness} {direction} siren", "a siren", "a chirp", "a sweeping tone",
    ),
    "noise": (
        "{colour} noise", "the sound of {colour} noise", "steady {colour} noise", "{loudness} {colour} noise",
        "noise", "static noise", "a noisy sound",
    ),
    "silence": ("silence", "complete silence", "no sound", "nothing at all", "an empty recording"),
}
# Captions of any kind with that attribute: "a loud sound" is true of loud beeps, noise, sirens, ...
GENERIC_TEMPLATES: tuple[str, ...] = ("a {loudness} sound", "something {loudness}", "a {pitch} sound",
                                      "something {pitch} pitched")
_FIELD_ATTRIBUTE = {"noun": "wave", "beeps": "count"}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _named(template: str, kind: str | None) -> frozenset[str]:
    names = {_FIELD_ATTRIBUTE.get(f, f) for f in _fields(template)}
    return frozenset(names | ({"kind"} if kind else set()))


def fill(template: str, true_of_clip: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A template filled with a clip's attributes: the caption and the attributes it names."""
    kind = None if template in GENERIC_TEMPLATES else true_of_clip["kind"]
    named = {k: true_of_clip[k] for k in sorted(_named(template, kind))}
    words = {**true_of_clip, "noun": WAVE_NOUNS.get(true_of_clip.get("wave", ""), ""),
             "beeps": "beep" if true_of_clip.get("count") == "one" else "beeps"}
    return template.format(**words), named


def canonical_caption(sound: Sound) -> str:
    """The caption used as the text query of a class, e.g. ``a low hum`` or ``three short high beeps``."""
    return fill(TEMPLATES[sound.kind][0], attributes(sound, "silent"))[0]  # canonical captions name no loudness


def templates_for(true_of_clip: dict[str, str]) -> list[str]:
    """Every template that can be filled for a clip: its kind's, and the generic ones it has fields for."""
    generic = [t for t in GENERIC_TEMPLATES if _fields(t) <= true_of_clip.keys()
               and true_of_clip.get("loudness") != "silent"]
    return [*TEMPLATES[true_of_clip["kind"]], *generic]


def random_caption(rng: random.Random, sound: Sound, loudness: Loudness) -> tuple[str, dict[str, str]]:
    """A caption of a clip: mostly one naming its whole class, else one naming part of it, or a generic one."""
    true_of_clip = attributes(sound, loudness)
    own = TEMPLATES[sound.kind]
    full = [t for t in own if _named(t, sound.kind) >= true_of_clip.keys() - {"loudness"}]
    partial = [t for t in own if t not in full]
    generic = templates_for(true_of_clip)[len(own):]
    draw = rng.random()
    if draw < 0.6 or not partial:
        pool = full
    elif draw < 0.85 or not generic:
        pool = partial
    else:
        pool = generic
    return fill(rng.choice(pool), true_of_clip)


def all_captions() -> dict[str, dict[str, str]]:
    """Every caption the generator can write, with the attributes it names."""
    captions: dict[str, dict[str, str]] = {}
    for sound in sounds():
        for loudness in (("silent",) if isinstance(sound, Silence) else LOUDNESSES):
            true_of_clip = attributes(sound, loudness)
            for template in templates_for(true_of_clip):
                text, named = fill(template, true_of_clip)
                if captions.setdefault(text, named) != named:
                    raise AssertionError(f"caption {text!r} names {named} and {captions[text]}")
    return dict(sorted(captions.items()))


# --- synthesis -------------------------------------------------------------------------------------------


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _fade(n: int, seconds: float = 0.01) -> npt.NDArray[np.float64]:
    """An envelope of ``n`` samples with short linear ramps at both ends (no clicks)."""
    ramp = min(n // 2, max(1, int(seconds * SAMPLING_RATE)))
    env = np.ones(n)
    env[:ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False)
    env[n - ramp :] = env[:ramp][::-1]
    return env


def _periodic(wave: Wave, phase: npt.NDArray[np.float64], f0: float) -> npt.NDArray[np.float64]:
    """A band-limited wave at ``phase`` (radians): additive harmonics below _HARMONICS_BELOW_HZ."""
    if wave == "sine":
        return np.sin(phase)
    top = max(1, int(_HARMONICS_BELOW_HZ // f0))
    ks = np.arange(1, top + 1, 2 if wave == "square" else 1, dtype=np.float64)
    summed: npt.NDArray[np.float64] = (np.sin(np.outer(ks, phase)) / ks[:, None]).sum(axis=0)
    return summed


def _unit_rms(signal: npt.NDArray[np.float64], active: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.float64]:
    on = signal if active is None else signal[active]
    rms = float(np.sqrt(np.mean(on**2))) if on.size else 0.0
    return signal / rms if rms > 0 else signal


def _tone(rng: random.Random, tone: Tone, n: int) -> npt.NDArray[np.float64]:
    f0 = _log_uniform(rng, *_TONE_HZ[tone.pitch])
    phase = 2 * math.pi * f0 * np.arange(n) / SAMPLING_RATE + rng.uniform(0, 2 * math.pi)
    return _unit_rms(_periodic(tone.wave, phase, f0)) * _fade(n)


def _beeps_layout(rng: random.Random, beeps: Beeps) -> tuple[float, list[float]]:
    """A beep length (s) and each beep's start (s)."""
    length = rng.uniform(*_BEEP_S[beeps.length])
    start = rng.uniform(0.05, 0.2)
    starts = []
    for _ in range(beeps.count):
        starts.append(start)
        start += length + rng.uniform(*_BEEP_GAP_S)
    return length, starts


def _beeps(rng: random.Random, beeps: Beeps, length: float, starts: list[float], n: int) -> npt.NDArray[np.float64]:
    freq = _log_uniform(rng, *_BEEP_HZ[beeps.pitch])
    signal = np.zeros(n)
    active = np.zeros(n, dtype=bool)
    width = int(length * SAMPLING_RATE)
    t = np.arange(width) / SAMPLING_RATE
    for s in starts:
        at = int(s * SAMPLING_RATE)
        signal[at : at + width] = np.sin(2 * math.pi * freq * t) * _fade(width, 0.005)
        active[at : at + width] = True
    return _unit_rms(signal, active)


def _siren(rng: random.Random, siren: Siren, n: int) -> npt.NDArray[np.float64]:
    low, high = _log_uniform(rng, *_SIREN_HZ[0]), _log_uniform(rng, *_SIREN_HZ[1])
    start, end = (low, high) if siren.direction == "rising" else (high, low)
    freq = start * (end / start) ** (np.arange(n) / max(1, n - 1))  # exponential: even in pitch
    phase = 2 * math.pi * np.cumsum(freq) / SAMPLING_RATE
    return _unit_rms(np.sin(phase)) * _fade(n)


def _noise(np_rng: np.random.Generator, colour: Colour, n: int) -> npt.NDArray[np.float64]:
    spectrum = np.fft.rfft(np_rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLING_RATE), 20.0)
    spectrum *= freqs ** (-_NOISE_SLOPE[colour] / 2)
    spectrum[0] = 0.0
    return _unit_rms(np.fft.irfft(spectrum, n)) * _fade(n)


def _length(rng: random.Random, sound: Sound) -> tuple[int, tuple[float, list[float]] | None]:
    """The clip's length in samples (long enough for its beeps), and the beeps' layout if it has beeps."""
    seconds = rng.uniform(MIN_SECONDS, MAX_SECONDS)
    if not isinstance(sound, Beeps):
        return round(seconds * SAMPLING_RATE), None
    length, starts = _beeps_layout(rng, sound)
    seconds = min(MAX_SECONDS, max(seconds, starts[-1] + length + 0.05))
    return round(seconds * SAMPLING_RATE), (length, starts)


def render(rng: random.Random, sound: Sound, loudness: Loudness) -> Audio:
    """One clip of ``sound`` at ``loudness``: float32 samples in [-1, 1] at SAMPLING_RATE."""
    n, layout = _length(rng, sound)
    np_rng = np.random.default_rng(rng.getrandbits(32))
    if isinstance(sound, Tone):
        signal = _tone(rng, sound, n)
    elif isinstance(sound, Beeps):
        assert layout is not None
        signal = _beeps(rng, sound, *layout, n)
    elif isinstance(sound, Siren):
        signal = _siren(rng, sound, n)
    elif isinstance(sound, Noise):
        signal = _noise(np_rng, sound.colour, n)
    else:
        signal = np.zeros(n)
    if loudness != "silent":
        signal = signal * 10 ** (rng.uniform(*_LEVEL_DB[loudness]) / 20)
    floor = np_rng.standard_normal(n) * 10 ** (rng.uniform(*_FLOOR_DB) / 20)
    return np.clip(signal + floor, -1.0, 1.0).astype(np.float32)


def split_rng(seed: int, split: Split) -> random.Random:
    """The generator of one (seed, split): train and val never share a random stream."""
    return random.Random(zlib.crc32(f"sounds:{split}:{seed}".encode()))


def sample(rng: random.Random, split: Split, sound: Sound | None = None) -> SoundSample:
    """One sample of ``sound`` (a random class if not given), quiet or loud at random."""
    if sound is None:
        sound = rng.choice(sounds())
    loudness: Loudness = "silent" if isinstance(sound, Silence) else rng.choice(LOUDNESSES)
    text, _ = random_caption(rng, sound, loudness)
    return SoundSample(render(rng, sound, loudness), sound, loudness, split, text)


def generate(n: int, *, seed: int, split: Split) -> list[SoundSample]:
    """``n`` samples of classes drawn at random."""
    rng = split_rng(seed, split)
    return [sample(rng, split) for _ in range(n)]


def generate_balanced(per_class: int, *, seed: int, split: Split) -> list[SoundSample]:
    """``per_class`` samples of every class, in class order."""
    rng = split_rng(seed, split)
    return [sample(rng, split, sound) for sound in sounds() for _ in range(per_class)]
