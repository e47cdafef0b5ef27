"""Labelled streams of real crowd-sourced wake phrases (`wwb/`) that training never used, for `kwstream eval`.

The streams hold every recording of the phrases the corpus keeps out altogether (``jarvis``) and the
development share of every other phrase (`corpus.wwb_dev_clip`), shuffled (seeded) and joined with
short pauses: real speakers, microphones and rooms. Each recording is one phrase with silence around
it; its label spans the frames within ``SPEECH_RANGE_DB`` of the recording's loudest. Every stream is
written clean and with pink noise at ``--snr-db``, with ``labels.csv`` for the phrases as keywords
(``jarvis``, ``alexa``, ``smart mirror``, ...).

    python -m training.wwb_streams --out ~/.cache/kwstream/dev_wwb

The recordings are Picovoice's wake-word benchmark (Apache-2.0; see ``wwb/MANIFEST.md``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from kwstream.audio.io import read_audio
from training.augment import add_noise, pink_noise
from training.corpus import SHARED_DATA_DIR, wwb_dev_clip
from training.vocab import SAMPLE_RATE

DEFAULT_WWB_DIR = SHARED_DATA_DIR / "wwb"
SPEECH_RANGE_DB = 25.0
FRAME_S = 0.02
PAUSE_S = (0.2, 0.8)
STREAM_S = 60.0


def speech_bounds(audio: np.ndarray) -> tuple[float, float]:
    """Seconds of the first and last 20 ms frame within SPEECH_RANGE_DB of the loudest frame."""
    frame = round(FRAME_S * SAMPLE_RATE)
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > level.max() - SPEECH_RANGE_DB)
    return loud[0] * FRAME_S, (loud[-1] + 1) * FRAME_S


def dev_clips(wwb_dir: Path) -> list[Path]:
    return [p for p in sorted(wwb_dir.glob("*/*.flac")) if wwb_dev_clip(p)]


def build(wwb_dir: Path, out: Path, seed: int, snr_db: float) -> None:
    rng = np.random.default_rng(seed)
    clips = dev_clips(wwb_dir)
    order = rng.permutation(len(clips))
    streams: list[tuple[str, np.ndarray, list[tuple[str, float, float]]]] = []
    parts: list[np.ndarray] = []
    labels: list[tuple[str, float, float]] = []
    position = 0
    for i in order:
        audio = read_audio(clips[i])
        pause = np.zeros(round(rng.uniform(*PAUSE_S) * SAMPLE_RATE), np.float32)
        start, end = speech_bounds(audio)
        offset = (position + len(pause)) / SAMPLE_RATE
        labels.append((clips[i].parent.name.replace("_", " "), offset + start, offset + end))
        parts += [pause, audio]
        position += len(pause) + len(audio)
        if position >= STREAM_S * SAMPLE_RATE or i == order[-1]:
            streams.append((f"wwb_{len(streams):03d}", np.concatenate(parts), labels))
            parts, labels, position = [], [], 0
    for condition in ("clean", "noisy"):
        folder = out / condition
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "labels.csv", "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(["stream", "keyword", "start", "end"])
            for name, audio, marks in streams:
                if condition == "noisy":
                    audio = add_noise(audio, pink_noise(rng, len(audio)), snr_db)
                sf.write(folder / f"{name}.flac", np.clip(audio, -1, 1), SAMPLE_RATE)
                rows.writerows([name, k, f"{s:.3f}", f"{e:.3f}"] for k, s, e in marks)
    print(f"{len(clips)} recordings in {len(streams)} streams, {sum(len(a) for _, a, _ in streams) / SAMPLE_RATE / 60:.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--wwb", type=Path, default=DEFAULT_WWB_DIR)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--snr-db", type=float, default=10.0, help="pink noise level of the noisy copy")
    args = parser.parse_args()
    build(args.wwb, args.out, args.seed, args.snr_db)


if __name__ == "__main__":
    main()
