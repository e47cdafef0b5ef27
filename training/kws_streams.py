"""Labelled keyword-spotting test streams in held-out voices, for `kwstream eval`.

Each keyword is spoken inside a whole synthesised sentence ("prefix keyword suffix"), so it is
continuous speech with its natural co-articulation, not a word pasted between pauses. Its label
comes from the same engine, voice and rate: the keyword starts where "prefix" alone stops
speaking and ends where "prefix keyword" alone stops (the synthesisers are deterministic, so the
sentence begins as those shorter renderings do; sentence-final lengthening makes the labels up to
~0.1 s long at their ends, well inside eval's hit window). Keyword-free streams are sentences
without any keyword, with hard near-misses ("stopped", "they", "lighter", "someone") mixed in.
Voices, voice variants and speaking rates are those the training corpus holds out: ``--voices
synthetic`` draws espeak-ng and flite ones, ``--voices natural`` Kokoro blends that hold its
held-out style (neural voices, the development set that sees how the model hears people). Every
stream is written clean and with babble or pink noise at an SNR drawn from ``--snr-db``, with
``labels.csv`` (the keywords)
and ``transcripts.csv`` (every sentence's text and span, so that ``kwstream eval --transcripts``
can say what was said where a keyword fired falsely).

Usage: python -m training.kws_streams --out DIR [--per-keyword 25] [--negative-minutes 40]
       [--voices synthetic|natural] [--snr-db 10 10]
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

from training.augment import add_noise, babble_noise, pink_noise
from kwstream.train import voices
from training.corpus import EVAL_SOURCE_SHARES, _draw_voice, draw_rate
from training.texts import DIGITS, PromptGenerator
from training.vocab import SAMPLE_RATE

EVAL_KEYWORDS = ("hey", "stop", "computer", "lights", *DIGITS)
NEAR_MISSES = ("stopped", "stopping", "they", "hay", "heavy", "lighter", "light", "computers", "commuter",
               "someone", "anyone", "often", "tone", "nineteen", "seventeen", "fourteen", "eighty", "twenty")
SPEECH_THRESHOLD = 0.02
"""Fraction of the peak above which a sample counts as speech when finding where speech ends."""
PAUSE_S = (0.6, 1.5)
STREAM_S = 60.0
VOICE_SETS = {"synthetic": {"flite": 0.2, "espeak": 0.8}, "natural": {"kokoro": 1.0}}
"""Engines (and their shares, in the order they are drawn) of each set of held-out voices."""


@dataclass(frozen=True)
class Piece:
    """One rendered sentence: its audio, its text, and its keywords' (keyword, start s, end s)."""

    audio: np.ndarray
    text: str
    marks: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class Voice:
    engine: str
    voice: str
    rate: float
    pitch: int


def _render(text: str, v: Voice) -> np.ndarray:
    audio, rate = voices.synthesise(v.engine, v.voice, text, v.rate, v.pitch)
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


def positive(keyword: str, prompts: PromptGenerator, v: Voice, rng: np.random.Generator) -> Piece:
    """A sentence holding ``keyword`` once, marked with the keyword's start and end in seconds."""
    prefix = _carrier(prompts, int(rng.integers(0, 6))) if rng.random() < 0.8 else ""
    suffix = _carrier(prompts, int(rng.integers(0, 6))) if rng.random() < 0.8 else ""
    text = " ".join(x for x in (prefix, keyword, suffix) if x)
    sentence = _render(text, v)
    origin = _speech_bounds(sentence)[0]
    if prefix:
        head = _render(prefix, v)
        start = origin + _speech_bounds(head)[1] - _speech_bounds(head)[0]
    else:
        start = origin
    head_kw = _render(f"{prefix} {keyword}".strip(), v)
    end = origin + _speech_bounds(head_kw)[1] - _speech_bounds(head_kw)[0]
    return Piece(sentence, text, ((keyword, start / SAMPLE_RATE, end / SAMPLE_RATE),))


def negative(prompts: PromptGenerator, v: Voice, rng: np.random.Generator) -> Piece:
    text = _carrier(prompts)
    if rng.random() < 0.3:
        words = text.split()
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(NEAR_MISSES)))
        text = " ".join(words)
    return Piece(_render(text, v), text)


def _voice(rng: np.random.Generator, shares: dict[str, float]) -> Voice:
    engine, voice = _draw_voice(rng, "eval", shares)
    return Voice(engine, voice, draw_rate(rng, engine, "eval"), int(rng.integers(25, 75)))


@dataclass(frozen=True)
class Stream:
    name: str
    audio: np.ndarray
    labels: list[tuple[str, float, float]]
    """(keyword, start s, end s) of every keyword in it."""
    transcript: list[tuple[float, float, str]]
    """(start s, end s, text) of every sentence in it."""


def _streams(pieces: list[Piece], prefix: str, rng: np.random.Generator) -> list[Stream]:
    """Concatenate pieces into ~STREAM_S streams with pauses between them."""
    streams, parts, labels, transcript, position = [], [], [], [], 0
    for piece in pieces:
        pause = np.zeros(int(rng.uniform(*PAUSE_S) * SAMPLE_RATE), np.float32)
        offset = (position + len(pause)) / SAMPLE_RATE
        parts += [pause, piece.audio / (np.abs(piece.audio).max() + 1e-9) * 0.5]
        labels += [(keyword, offset + s, offset + e) for keyword, s, e in piece.marks]
        transcript.append((offset, offset + len(piece.audio) / SAMPLE_RATE, piece.text))
        position += len(pause) + len(piece.audio)
        if position >= STREAM_S * SAMPLE_RATE:
            streams.append(Stream(f"{prefix}_{len(streams):03d}", np.concatenate(parts + [pause]), labels, transcript))
            parts, labels, transcript, position = [], [], [], 0
    if parts:
        streams.append(Stream(f"{prefix}_{len(streams):03d}", np.concatenate(parts + [np.zeros(SAMPLE_RATE, np.float32)]),
                              labels, transcript))
    return streams


def build(out: Path, per_keyword: int, negative_minutes: float, seed: int, voice_set: str = "synthetic",
          snr_db: tuple[float, float] = (10.0, 10.0)) -> None:
    shares = VOICE_SETS[voice_set]
    assert set(shares) <= set(EVAL_SOURCE_SHARES), "every engine of a set must have held-out voices"
    rng = np.random.default_rng(seed)
    prompts = PromptGenerator(rng)
    jobs = [k for k in EVAL_KEYWORDS for _ in range(per_keyword)]
    rng.shuffle(jobs)
    positives = [positive(keyword, prompts, _voice(rng, shares), rng) for keyword in tqdm(jobs, desc="keyword sentences")]
    negatives, seconds = [], 0.0
    with tqdm(total=round(negative_minutes * 60), desc="keyword-free seconds") as bar:
        while seconds < negative_minutes * 60:
            piece = negative(prompts, _voice(rng, shares), rng)
            negatives.append(piece)
            seconds += len(piece.audio) / SAMPLE_RATE
            bar.update(round(len(piece.audio) / SAMPLE_RATE))
    streams = _streams(positives, "pos", rng) + _streams(negatives, "neg", rng)
    babble_pool = [piece.audio for piece in negatives[:200]]
    for condition in ("clean", "noisy"):
        folder = out / condition
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "labels.csv", "w", newline="") as labels, open(folder / "transcripts.csv", "w", newline="") as texts:
            label_rows, text_rows = csv.writer(labels), csv.writer(texts)
            label_rows.writerow(["stream", "keyword", "start", "end"])
            text_rows.writerow(["stream", "start", "end", "text"])
            for stream in streams:
                audio = stream.audio
                if condition == "noisy":
                    noise = babble_noise(rng, len(audio), babble_pool) if rng.random() < 0.5 else pink_noise(rng, len(audio))
                    audio = add_noise(audio, noise, float(rng.uniform(*snr_db)))
                sf.write(folder / f"{stream.name}.flac", np.clip(audio, -1, 1), SAMPLE_RATE)
                label_rows.writerows([stream.name, k, f"{s:.3f}", f"{e:.3f}"] for k, s, e in stream.labels)
                text_rows.writerows([stream.name, f"{s:.3f}", f"{e:.3f}", text] for s, e, text in stream.transcript)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-keyword", type=int, default=25, help="sentences per keyword")
    parser.add_argument("--negative-minutes", type=float, default=40.0, help="minutes of keyword-free speech")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--voices", choices=sorted(VOICE_SETS), default="synthetic", help="which held-out voices speak")
    parser.add_argument("--snr-db", type=float, nargs=2, default=(10.0, 10.0), metavar=("LOW", "HIGH"),
                        help="the noisy copy's SNR, drawn per stream")
    args = parser.parse_args()
    build(args.out, args.per_keyword, args.negative_minutes, args.seed, args.voices, tuple(args.snr_db))


if __name__ == "__main__":
    main()
