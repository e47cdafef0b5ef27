"""Build the labelled training/evaluation corpus: synthetic voices of five engines plus real speech.

Sources, each with its own share of the synthetic clips (`SOURCE_SHARES`): espeak-ng, flite and
festival (formant and diphone synthesis), hibari and Kokoro (neural voices; every Kokoro clip is a
new random blend of styles). Real speech: FSDD digits, the crowd-sourced wake phrases of `wwb/`
and the home-microphone wake words of `precise/` (less the clips in the package's keyword-free negatives). Evaluation uses voices, voice variants, speaking rates, Kokoro styles, an FSDD speaker and
a wake phrase that never occur in training, so the reported error rates measure generalisation
rather than memorisation.

Usage: python -m training.corpus --out DIR --hours H [--seed S] [--share kokoro=0.05 ...]
"""

from __future__ import annotations

import argparse
import json
import zlib
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from kwstream.train import voices
from kwstream.train.voices import (ESPEAK_EVAL_BASES, ESPEAK_EVAL_VARIANTS, ESPEAK_TRAIN_BASES, ESPEAK_TRAIN_VARIANTS,
                                   FLITE_EVAL_VOICES, FLITE_TRAIN_VOICES)
from training.texts import DIGITS, PromptGenerator
from training.vocab import SAMPLE_RATE, normalize_text

# Relative speaking rate (1.0 = engine default); the evaluation band is disjoint from training.
TRAIN_RATE_BANDS = ((0.65, 0.86), (1.06, 1.35))
NEURAL_TRAIN_RATE_BANDS = ((0.8, 0.86), (1.06, 1.25))
"""The neural voices sound unnatural beyond these rates."""
EVAL_RATE_BANDS = ((0.88, 1.04),)
SHARED_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
"""The shared recordings beside the repository (``../shared/data``: fsdd/, wwb/, precise/)."""
FSDD_EVAL_SPEAKERS = ("theo",)
WWB_EVAL_PHRASES = ("jarvis",)
"""Wake phrases kept out of training altogether: spotted as typed keywords in development."""
PRECISE_WAKE_WORDS = {"athena": "athena", "amelia": "amelia", "android": "android", "heychatterbox": "hey chatterbox"}
"""Folders of ``precise/`` and what every recording in them says."""
WWB_DEV_SHARE = 0.15
"""Share of every other phrase's clips kept out of training, as the real-speech development streams' other phrases."""
NEAR_MISS_SHARE = 0.12
"""Share of training prompts built around near-miss words ("stopped", "someone"); none in the eval split."""
SOURCE_SHARES = {"flite": 0.10, "espeak": 0.50, "festival": 0.04, "hibari": 0.31, "kokoro": 0.05}
"""Share of the synthetic training clips per engine. CPU-s per clip: Kokoro ~1, festival ~0.5, the others < 0.1."""
EVAL_SOURCE_SHARES = {"flite": 0.15, "espeak": 0.5, "kokoro": 0.35}
"""Held-out voices exist for these engines only (hibari has one voice, festival's two both train)."""


@dataclass(frozen=True)
class Utterance:
    """One manifest row; `path` is relative to the corpus directory."""

    path: str
    text: str
    voice: str
    rate: float
    source: str
    seconds: float


@dataclass(frozen=True)
class SynthJob:
    """Everything needed to synthesise one utterance (picklable for the worker pool)."""

    out_dir: str
    rel_path: str
    text: str
    engine: str
    voice: str
    rate: float
    pitch: int
    word_gap: int


def _draw_rate(rng: np.random.Generator, bands: tuple[tuple[float, float], ...]) -> float:
    low, high = bands[int(rng.integers(len(bands)))]
    return round(float(rng.uniform(low, high)), 3)


def _draw_voice(rng: np.random.Generator, split: str, shares: dict[str, float]) -> tuple[str, str]:
    """(engine, voice), the engine drawn by one uniform number against the shares in their order.

    Eval voices are never training voices: a held-out espeak-ng variant (any base)
    or base (any variant), flite's rms, or a Kokoro blend holding the held-out style."""
    cumulative = np.cumsum(list(shares.values())) / sum(shares.values())
    engine = list(shares)[min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(shares) - 1)]
    train = split == "train"
    if engine == "flite":
        return engine, str(rng.choice(FLITE_TRAIN_VOICES if train else FLITE_EVAL_VOICES))
    if engine == "festival":
        return engine, str(rng.choice(voices.FESTIVAL_VOICES))
    if engine == "hibari":
        return engine, "heart"
    if engine == "kokoro":
        return engine, voices.draw_blend(rng, voices.KOKORO_TRAIN_STYLES if train else voices.KOKORO_STYLES,
                                         None if train else voices.KOKORO_EVAL_STYLE)
    if train:
        base, variant = rng.choice(ESPEAK_TRAIN_BASES), rng.choice(ESPEAK_TRAIN_VARIANTS)
    elif rng.random() < 0.5:
        base, variant = rng.choice(ESPEAK_TRAIN_BASES + ESPEAK_EVAL_BASES), rng.choice(ESPEAK_EVAL_VARIANTS)
    else:
        base, variant = rng.choice(ESPEAK_EVAL_BASES), rng.choice(ESPEAK_TRAIN_VARIANTS + ESPEAK_EVAL_VARIANTS)
    return "espeak", f"{base}+{variant}" if variant else str(base)


def draw_rate(rng: np.random.Generator, engine: str, split: str) -> float:
    if split != "train":
        bands = EVAL_RATE_BANDS
    else:
        bands = NEURAL_TRAIN_RATE_BANDS if engine in voices.NEURAL_ENGINES else TRAIN_RATE_BANDS
    low, high = bands[int(rng.integers(len(bands)))]
    return round(float(rng.uniform(low, high)), 3)


def render(job: SynthJob) -> Utterance:
    """Synthesise, resample to 16 kHz mono, trim and write one utterance.

    A clip already on disk is kept (jobs are drawn from the seed, so it is this job's clip): an
    interrupted build resumes where it stopped. Each clip is written under a temporary name and
    renamed, so a clip on disk is always whole.
    """
    path = Path(job.out_dir) / job.rel_path
    if path.exists():
        seconds = sf.info(path).duration
    else:
        audio = voices.clip(job.engine, job.voice, job.text, job.rate, job.pitch, job.word_gap,
                            trim_seed=zlib.crc32(job.rel_path.encode()))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.wav")
        sf.write(partial, audio, SAMPLE_RATE, subtype="PCM_16")
        partial.rename(path)
        seconds = len(audio) / SAMPLE_RATE
    return Utterance(job.rel_path, normalize_text(job.text), f"{job.engine}:{job.voice}", job.rate,
                     job.engine, round(seconds, 3))


def synthetic_jobs(out_dir: Path, split: str, count: int, seed: int,
                   shares: dict[str, float] | None = None) -> list[SynthJob]:
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    prompts = PromptGenerator(rng, near_miss_share=NEAR_MISS_SHARE if split == "train" else 0.0)
    shares = shares or (SOURCE_SHARES if split == "train" else EVAL_SOURCE_SHARES)
    jobs = []
    for i in range(count):
        engine, voice = _draw_voice(rng, split, shares)
        rate = draw_rate(rng, engine, split)
        jobs.append(SynthJob(str(out_dir), f"{split}/{i // 1000:03d}/{i:06d}.wav", prompts(), engine, voice,
                             rate, int(rng.integers(15, 85)), int(rng.integers(0, 4))))
    return jobs


def fsdd_utterances(fsdd_dir: Path, out_dir: Path) -> dict[str, list[Utterance]]:
    """Resample FSDD (8 kHz) to 16 kHz; speakers in FSDD_EVAL_SPEAKERS go to the eval split."""
    splits: dict[str, list[Utterance]] = {"train": [], "eval": []}
    for src in sorted(fsdd_dir.glob("*.wav")):
        digit, speaker, _ = src.stem.split("_")
        split = "eval" if speaker in FSDD_EVAL_SPEAKERS else "train"
        splits[split].append(copy_real(src, out_dir, f"fsdd/{src.name}", DIGITS[int(digit)], f"fsdd:{speaker}", "fsdd"))
    return splits


def wwb_dev_clip(path: Path) -> bool:
    """Whether a wake-phrase recording is kept out of training: a held-out phrase, or the dev share of another."""
    return path.parent.name in WWB_EVAL_PHRASES or zlib.crc32(path.name.encode()) % 1000 < WWB_DEV_SHARE * 1000


def wwb_utterances(wwb_dir: Path, out_dir: Path) -> list[Utterance]:
    """The crowd-sourced wake phrases (16 kHz FLAC) that training may use, as 16-bit WAV."""
    rows = []
    for src in sorted(wwb_dir.glob("*/*.flac")):
        if wwb_dev_clip(src):
            continue
        rows.append(copy_real(src, out_dir, f"wwb/{src.parent.name}/{src.stem}.wav", src.parent.name.replace("_", " "),
                              "wwb", "wwb"))
    return rows


def precise_utterances(precise_dir: Path, out_dir: Path) -> list[Utterance]:
    """Mycroft's community wake words (one to a few speakers per word, home microphones) as 16-bit WAV,
    less the clips ``training.negative_speech`` puts in the package's keyword-free speech (the first
    of each folder by name)."""
    from training.negative_speech import REAL

    rows = []
    for folder, text in PRECISE_WAKE_WORDS.items():
        negatives = dict(REAL).get(f"precise/{folder}", 0)
        for src in sorted((precise_dir / folder).glob("*.flac"))[negatives:]:
            rows.append(copy_real(src, out_dir, f"precise/{folder}/{src.stem}.wav", text, f"precise:{folder}", "precise"))
    return rows


def copy_real(src: Path, out_dir: Path, rel: str, text: str, voice: str, source: str) -> Utterance:
    """A real recording written to ``out_dir / rel`` as 16 kHz mono 16-bit WAV, and its manifest row."""
    audio, rate = sf.read(src, dtype="float32")
    audio = audio.mean(axis=1) if audio.ndim > 1 else audio
    audio = soxr.resample(audio, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else audio
    (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    sf.write(out_dir / rel, audio, SAMPLE_RATE, subtype="PCM_16")
    return Utterance(rel, normalize_text(text), voice, 1.0, source, round(len(audio) / SAMPLE_RATE, 3))


def write_manifest(path: Path, rows: list[Utterance]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(asdict(row)) + "\n")


def read_manifest(path: Path) -> list[Utterance]:
    """The manifest's rows less any voice reserved for independent evaluation (`voices.RESERVED_VOICES`)."""
    with path.open() as f:
        rows = [Utterance(**json.loads(line)) for line in f if line.strip()]
    return [r for r in rows if r.voice not in voices.RESERVED_VOICES]


def build(out_dir: Path, hours: float, eval_hours: float, seed: int, fsdd_dir: Path | None, wwb_dir: Path | None,
          jobs: int, shares: dict[str, float] | None = None, precise_dir: Path | None = None) -> None:
    """Write train.jsonl and eval.jsonl (plus audio) to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mean_seconds = 1.7  # measured average prompt length; only used to size the job list
    real = fsdd_utterances(fsdd_dir, out_dir) if fsdd_dir else {"train": [], "eval": []}
    if wwb_dir:
        real["train"] += wwb_utterances(wwb_dir, out_dir)
    if precise_dir:
        real["train"] += precise_utterances(precise_dir, out_dir)
    for split, split_hours in (("train", hours), ("eval", eval_hours)):
        todo = synthetic_jobs(out_dir, split, int(split_hours * 3600 / mean_seconds), seed,
                              shares if split == "train" else None)
        with Pool(jobs) as pool:
            rows = list(tqdm(pool.imap(render, todo, chunksize=8), total=len(todo), desc=split))
        rows += real[split]
        write_manifest(out_dir / f"{split}.jsonl", rows)
        for source in sorted({r.source for r in rows}):
            mine = [r for r in rows if r.source == source]
            print(f"{split} {source}: {len(mine)} utterances, {sum(r.seconds for r in mine) / 3600:.2f} h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hours", type=float, required=True, help="synthetic training hours (approximate)")
    parser.add_argument("--eval-hours", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fsdd", type=Path, default=SHARED_DATA_DIR / "fsdd" / "recordings",
                        help="FSDD recordings folder; pass '' to skip")
    parser.add_argument("--wwb", type=Path, default=SHARED_DATA_DIR / "wwb",
                        help="crowd-sourced wake phrases (one folder per phrase); pass '' to skip")
    parser.add_argument("--precise", type=Path, default=SHARED_DATA_DIR / "precise",
                        help="community wake words (one folder per word); pass '' to skip")
    parser.add_argument("--share", action="append", default=[], metavar="ENGINE=SHARE",
                        help=f"share of training clips for an engine (default {SOURCE_SHARES}); repeatable")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    shares = dict(SOURCE_SHARES)
    for item in args.share:
        engine, _, share = item.partition("=")
        if engine not in shares:
            parser.error(f"--share {item}: engine must be one of {sorted(shares)}")
        shares[engine] = float(share)
    fsdd_dir = args.fsdd if str(args.fsdd) and args.fsdd.is_dir() else None
    wwb_dir = args.wwb if str(args.wwb) and args.wwb.is_dir() else None
    precise_dir = args.precise if str(args.precise) and args.precise.is_dir() else None
    build(args.out, args.hours, args.eval_hours, args.seed, fsdd_dir, wwb_dir, args.jobs, shares, precise_dir)


if __name__ == "__main__":
    main()
