"""Build the labelled training/evaluation corpus: espeak-ng and flite speech plus real FSDD digits.

Evaluation uses voices, voice variants, speaking rates and an FSDD speaker that never occur in
training, so the reported error rates measure generalisation rather than memorisation.

Usage: python -m training.corpus --out DIR --hours H [--seed S]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import zlib
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from training.texts import DIGITS, PromptGenerator
from training.vocab import SAMPLE_RATE, normalize_text

ESPEAK_TRAIN_BASES = ("en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-us-nyc")
ESPEAK_EVAL_BASES = ("en-029", "en-gb-x-gbcwmd")
ESPEAK_TRAIN_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f5", "croak", "whisper", "klatt", "klatt2",
    "klatt3", "Alex", "Andrea", "Annie", "Denis", "Gene", "Hugo", "Jacky", "Lee", "Mike", "adam", "anika",
    "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "edward", "grandpa", "iven",
    "john", "linda", "max", "michel", "norbert", "paul", "quincy", "rob", "robert", "steph", "travis", "victor",
)
ESPEAK_EVAL_VARIANTS = ("m7", "f4", "whisperf", "Andy", "grandma", "shelby", "klatt4", "marcelo")
FLITE_TRAIN_VOICES = ("kal", "kal16", "awb", "slt")
FLITE_EVAL_VOICES = ("rms",)
ESPEAK_DEFAULT_WPM = 175
# Relative speaking rate (1.0 = engine default); the evaluation band is disjoint from training.
TRAIN_RATE_BANDS = ((0.65, 0.86), (1.06, 1.35))
EVAL_RATE_BANDS = ((0.88, 1.04),)
FSDD_EVAL_SPEAKERS = ("theo",)
NEAR_MISS_SHARE = 0.12
"""Share of training prompts built around near-miss words ("stopped", "someone"); none in the eval split."""
FLITE_SHARE = 0.2


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


def _draw_voice(rng: np.random.Generator, split: str) -> tuple[str, str]:
    """(engine, voice). Eval: held-out variant on any base, or held-out base with any variant."""
    if rng.random() < FLITE_SHARE:
        return "flite", str(rng.choice(FLITE_EVAL_VOICES if split == "eval" else FLITE_TRAIN_VOICES))
    if split == "train":
        base, variant = rng.choice(ESPEAK_TRAIN_BASES), rng.choice(ESPEAK_TRAIN_VARIANTS)
    elif rng.random() < 0.5:
        base, variant = rng.choice(ESPEAK_TRAIN_BASES + ESPEAK_EVAL_BASES), rng.choice(ESPEAK_EVAL_VARIANTS)
    else:
        base, variant = rng.choice(ESPEAK_EVAL_BASES), rng.choice(ESPEAK_TRAIN_VARIANTS + ESPEAK_EVAL_VARIANTS)
    return "espeak", f"{base}+{variant}" if variant else str(base)


def _synthesise(job: SynthJob) -> tuple[np.ndarray, int]:
    if job.engine == "espeak":
        cmd = ["espeak-ng", "--stdout", "-v", job.voice, "-s", str(round(ESPEAK_DEFAULT_WPM * job.rate)),
               "-p", str(job.pitch), "-g", str(job.word_gap), job.text]
    else:
        cmd = ["flite", "-voice", job.voice, "--setf", f"duration_stretch={1.0 / job.rate:.3f}",
               "-t", job.text, "-o", "/dev/stdout"]
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return audio, rate


def _trim(audio: np.ndarray, rng_seed: int, threshold: float = 0.01) -> np.ndarray:
    """Cut the engines' long trailing silence but keep a random 50-250 ms margin either side."""
    loud = np.flatnonzero(np.abs(audio) > threshold * max(float(np.abs(audio).max()), 1e-6))
    if loud.size == 0:
        return audio
    margin = np.random.default_rng(rng_seed).integers(800, 4000, size=2)
    return audio[max(0, loud[0] - margin[0]): loud[-1] + margin[1]]


def render(job: SynthJob) -> Utterance:
    """Synthesise, resample to 16 kHz mono, trim and write one utterance."""
    audio, rate = _synthesise(job)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    audio = _trim(audio, zlib.crc32(job.rel_path.encode()))
    peak = float(np.abs(audio).max()) or 1.0
    audio = audio * (0.9 / peak)
    path = Path(job.out_dir) / job.rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return Utterance(job.rel_path, normalize_text(job.text), f"{job.engine}:{job.voice}", job.rate,
                     job.engine, round(len(audio) / SAMPLE_RATE, 3))


def synthetic_jobs(out_dir: Path, split: str, count: int, seed: int) -> list[SynthJob]:
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    prompts = PromptGenerator(rng, near_miss_share=NEAR_MISS_SHARE if split == "train" else 0.0)
    jobs = []
    for i in range(count):
        engine, voice = _draw_voice(rng, split)
        rate = _draw_rate(rng, TRAIN_RATE_BANDS if split == "train" else EVAL_RATE_BANDS)
        jobs.append(SynthJob(str(out_dir), f"{split}/{i // 1000:03d}/{i:06d}.wav", prompts(), engine, voice,
                             rate, int(rng.integers(15, 85)), int(rng.integers(0, 4))))
    return jobs


def fsdd_utterances(fsdd_dir: Path, out_dir: Path) -> dict[str, list[Utterance]]:
    """Resample FSDD (8 kHz) to 16 kHz; speakers in FSDD_EVAL_SPEAKERS go to the eval split."""
    splits: dict[str, list[Utterance]] = {"train": [], "eval": []}
    for src in sorted(fsdd_dir.glob("*.wav")):
        digit, speaker, _ = src.stem.split("_")
        audio, rate = sf.read(src, dtype="float32")
        audio = soxr.resample(audio, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else audio
        rel = f"fsdd/{src.name}"
        (out_dir / "fsdd").mkdir(parents=True, exist_ok=True)
        sf.write(out_dir / rel, audio, SAMPLE_RATE, subtype="PCM_16")
        split = "eval" if speaker in FSDD_EVAL_SPEAKERS else "train"
        splits[split].append(Utterance(rel, normalize_text(DIGITS[int(digit)]), f"fsdd:{speaker}", 1.0, "fsdd",
                                       round(len(audio) / SAMPLE_RATE, 3)))
    return splits


def write_manifest(path: Path, rows: list[Utterance]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(asdict(row)) + "\n")


def read_manifest(path: Path) -> list[Utterance]:
    with path.open() as f:
        return [Utterance(**json.loads(line)) for line in f if line.strip()]


def build(out_dir: Path, hours: float, eval_hours: float, seed: int, fsdd_dir: Path | None, jobs: int) -> None:
    """Write train.jsonl and eval.jsonl (plus audio) to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mean_seconds = 1.7  # measured average prompt length; only used to size the job list
    fsdd = fsdd_utterances(fsdd_dir, out_dir) if fsdd_dir else {"train": [], "eval": []}
    for split, split_hours in (("train", hours), ("eval", eval_hours)):
        todo = synthetic_jobs(out_dir, split, int(split_hours * 3600 / mean_seconds), seed)
        with Pool(jobs) as pool:
            rows = list(tqdm(pool.imap(render, todo, chunksize=32), total=len(todo), desc=split))
        rows += fsdd[split]
        write_manifest(out_dir / f"{split}.jsonl", rows)
        total = sum(r.seconds for r in rows) / 3600
        print(f"{split}: {len(rows)} utterances, {total:.2f} h ({len(fsdd[split])} FSDD)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hours", type=float, required=True, help="synthetic training hours (approximate)")
    parser.add_argument("--eval-hours", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fsdd", type=Path, default=Path("/work/shared/data/fsdd/recordings"),
                        help="FSDD recordings folder; pass '' to skip")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    fsdd_dir = args.fsdd if str(args.fsdd) and args.fsdd.is_dir() else None
    build(args.out, args.hours, args.eval_hours, args.seed, fsdd_dir, args.jobs)


if __name__ == "__main__":
    main()
