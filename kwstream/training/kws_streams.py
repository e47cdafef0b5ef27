"""Labelled keyword-spotting test streams in held-out voices, for `kwstream eval`.

Each keyword is spoken inside a whole synthesised sentence ("prefix keyword suffix"), so it is
continuous speech with its natural co-articulation, not a word pasted between pauses. Its label
comes from the same engine, voice and rate: the keyword starts where "prefix" alone stops
speaking and ends where "prefix keyword" alone stops (the synthesisers are deterministic, so the
sentence begins as those shorter renderings do; sentence-final lengthening makes the labels up to
~0.1 s long at their ends, well inside eval's hit window). Keyword-free streams are sentences
without any keyword, with hard near-misses ("stopped", "they", "lighter", "someone") mixed in.
Voices, voice variants and speaking rates are those the training corpus holds out. Every stream
is written clean and with babble or pink noise at a fixed SNR.

Usage: python -m kwstream.training.kws_streams --out DIR [--per-keyword 25] [--negative-minutes 40]
"""

from __future__ import annotations

import argparse
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from kwstream.training.augment import add_noise, babble_noise, pink_noise
from kwstream.training.corpus import EVAL_RATE_BANDS, SynthJob, _draw_rate, _draw_voice, _synthesise
from kwstream.training.texts import DIGITS, PromptGenerator
from kwstream.training.vocab import SAMPLE_RATE

EVAL_KEYWORDS = ("hey", "stop", "computer", "lights", *DIGITS)
NEAR_MISSES = ("stopped", "stopping", "they", "hay", "heavy", "lighter", "light", "computers", "commuter",
               "someone", "anyone", "often", "tone", "nineteen", "seventeen", "fourteen", "eighty", "twenty")
SPEECH_THRESHOLD = 0.02
"""Fraction of the peak above which a sample counts as speech when finding where speech ends."""
PAUSE_S = (0.6, 1.5)
STREAM_S = 60.0
NOISY_SNR_DB = 10.0


@dataclass(frozen=True)
class Voice:
    engine: str
    voice: str
    rate: float
    pitch: int


def _render(text: str, v: Voice) -> np.ndarray:
    audio, rate = _synthesise(SynthJob("", "", text, v.engine, v.voice, v.rate, v.pitch, 0))
    audio = audio.mean(axis=1) if audio.ndim > 1 else audio
    return soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32) if rate != SAMPLE_RATE else audio


def _speech_bounds(audio: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(audio) > SPEECH_THRESHOLD * max(float(np.abs(audio).max()), 1e-6))
    return (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, 0)


def keyword_free(text: str) -> bool:
    return not set(re.findall(r"[a-z']+", text.lower())) & set(EVAL_KEYWORDS)


def _carrier(prompts: PromptGenerator, words: int = 12) -> str:
    """A keyword-free piece of a sentence, at most ``words`` long."""
    while True:
        text = " ".join(prompts().split()[:words])
        if keyword_free(text):
            return text


def positive(keyword: str, prompts: PromptGenerator, v: Voice, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """A sentence holding ``keyword`` once, with the keyword's start and end in seconds."""
    prefix = _carrier(prompts, int(rng.integers(0, 6))) if rng.random() < 0.8 else ""
    suffix = _carrier(prompts, int(rng.integers(0, 6))) if rng.random() < 0.8 else ""
    sentence = _render(" ".join(x for x in (prefix, keyword, suffix) if x), v)
    origin = _speech_bounds(sentence)[0]
    if prefix:
        head = _render(prefix, v)
        start = origin + _speech_bounds(head)[1] - _speech_bounds(head)[0]
    else:
        start = origin
    head_kw = _render(f"{prefix} {keyword}".strip(), v)
    end = origin + _speech_bounds(head_kw)[1] - _speech_bounds(head_kw)[0]
    return sentence, start / SAMPLE_RATE, end / SAMPLE_RATE


def negative(prompts: PromptGenerator, v: Voice, rng: np.random.Generator) -> np.ndarray:
    text = _carrier(prompts)
    if rng.random() < 0.3:
        words = text.split()
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(NEAR_MISSES)))
        text = " ".join(words)
    return _render(text, v)


def _voice(rng: np.random.Generator) -> Voice:
    engine, voice = _draw_voice(rng, "eval")
    return Voice(engine, voice, _draw_rate(rng, EVAL_RATE_BANDS), int(rng.integers(25, 75)))


def _streams(pieces, prefix: str, rng: np.random.Generator):
    """Concatenate (audio, [(keyword, start, end)]) pieces into ~STREAM_S streams with pauses."""
    streams, parts, labels, position = [], [], [], 0
    for audio, marks in pieces:
        pause = np.zeros(int(rng.uniform(*PAUSE_S) * SAMPLE_RATE), np.float32)
        offset = (position + len(pause)) / SAMPLE_RATE
        parts += [pause, audio / (np.abs(audio).max() + 1e-9) * 0.5]
        labels += [(keyword, offset + s, offset + e) for keyword, s, e in marks]
        position += len(pause) + len(audio)
        if position >= STREAM_S * SAMPLE_RATE:
            streams.append((f"{prefix}_{len(streams):03d}", np.concatenate(parts + [pause]), labels))
            parts, labels, position = [], [], 0
    if parts:
        streams.append((f"{prefix}_{len(streams):03d}", np.concatenate(parts + [np.zeros(SAMPLE_RATE, np.float32)]), labels))
    return streams


def build(out: Path, per_keyword: int, negative_minutes: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    prompts = PromptGenerator(rng)
    jobs = [k for k in EVAL_KEYWORDS for _ in range(per_keyword)]
    rng.shuffle(jobs)
    positives = []
    for keyword in tqdm(jobs, desc="keyword sentences"):
        audio, start, end = positive(keyword, prompts, _voice(rng), rng)
        positives.append((audio, [(keyword, start, end)]))
    negatives, seconds = [], 0.0
    with tqdm(total=round(negative_minutes * 60), desc="keyword-free seconds") as bar:
        while seconds < negative_minutes * 60:
            audio = negative(prompts, _voice(rng), rng)
            negatives.append((audio, []))
            seconds += len(audio) / SAMPLE_RATE
            bar.update(round(len(audio) / SAMPLE_RATE))
    streams = _streams(positives, "pos", rng) + _streams(negatives, "neg", rng)
    babble_pool = [audio for audio, _ in negatives[:200]]
    for condition in ("clean", "noisy"):
        folder = out / condition
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "labels.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["stream", "keyword", "start", "end"])
            for name, audio, labels in streams:
                if condition == "noisy":
                    noise = babble_noise(rng, len(audio), babble_pool) if rng.random() < 0.5 else pink_noise(rng, len(audio))
                    audio = add_noise(audio, noise, NOISY_SNR_DB)
                sf.write(folder / f"{name}.flac", np.clip(audio, -1, 1), SAMPLE_RATE)
                writer.writerows([name, k, f"{s:.3f}", f"{e:.3f}"] for k, s, e in labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-keyword", type=int, default=25, help="sentences per keyword")
    parser.add_argument("--negative-minutes", type=float, default=40.0, help="minutes of keyword-free speech")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    build(args.out, args.per_keyword, args.negative_minutes, args.seed)


if __name__ == "__main__":
    main()
