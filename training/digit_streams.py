"""Labelled test streams of real spoken digits (FSDD), one per speaker, for `kwstream eval`.

Each speaker's stream is ``per_digit`` recordings of every digit, drawn (seeded) from the chosen
recording indices, in shuffled order, with random pauses between them and a faint pink noise floor
(a quiet room, not digital silence, so the VAD sees what a microphone gives). FSDD files are
trimmed to the word, so a recording's placement is its label. ``--exclude-index`` keeps the
recordings used for enrollment or training out of the test streams.

    python -m training.digit_streams --speakers theo,lucas --per-digit 10 \\
        --exclude-index 0-2 --out /tmp/digits

writes ``/tmp/digits/{speaker}.flac`` (16 kHz mono) and ``/tmp/digits/labels.csv``
(``stream,keyword,start,end``, keyword = "zero" ... "nine"). The FSDD recordings are CC BY-SA 4.0.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.errors import KwstreamError
from training.augment import pink_noise
from training.texts import DIGITS

DEFAULT_FSDD_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
"""The shared data folder beside the repository (``../shared/data/fsdd``)."""
FSDD_FILE = re.compile(r"^(\d)_([a-z]+)_(\d+)$")


@dataclass(frozen=True)
class StreamSettings:
    per_digit: int = 10
    """Recordings of each digit per speaker."""
    pause_s: tuple[float, float] = (0.3, 1.2)
    """Range of the uniform random pause before each recording (and at the stream's end)."""
    noise_floor_dbfs: float = -70.0
    """RMS level of the pink noise under the whole stream (FSDD speakers lie between -45 dBFS RMS, theo, and -21, jackson)."""
    seed: int = 0


def parse_indices(spec: str) -> set[int]:
    """``"0-2,7"`` -> {0, 1, 2, 7}."""
    indices: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise KwstreamError(f"bad index range {part!r}: use numbers and ranges like 0-2,7")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise KwstreamError(f"bad index range {part!r}: the end comes before the start")
        indices.update(range(first, last + 1))
    return indices


def recordings(fsdd: Path, speaker: str, digit: int, indices: Collection[int] | None, exclude: Collection[int]) -> list[Path]:
    """The speaker's recordings of ``digit`` whose index is allowed, in index order."""
    found = []
    for path in (fsdd / "recordings").glob(f"{digit}_{speaker}_*.wav"):
        match = FSDD_FILE.match(path.stem)
        if match and (indices is None or int(match[3]) in indices) and int(match[3]) not in exclude:
            found.append((int(match[3]), path))
    return [path for _, path in sorted(found)]


def build_stream(clips: Sequence[tuple[str, np.ndarray]], settings: StreamSettings,
                 rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Concatenate (word, audio) clips with pauses over a noise floor; returns the stream and
    each word's (word, start_s, end_s)."""
    pauses = (rng.uniform(*settings.pause_s, size=len(clips) + 1) * SAMPLE_RATE).astype(int)
    lengths = np.array([len(audio) for _, audio in clips], dtype=int)
    starts = np.cumsum(pauses[:-1]) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    stream = pink_noise(rng, int(pauses.sum() + lengths.sum())) * np.float32(10 ** (settings.noise_floor_dbfs / 20))
    labels = []
    for (word, audio), start in zip(clips, starts):
        stream[start:start + len(audio)] += audio
        labels.append((word, start / SAMPLE_RATE, (start + len(audio)) / SAMPLE_RATE))
    return np.clip(stream, -1.0, 1.0), labels


def build(fsdd: Path, out: Path, speakers: Sequence[str], settings: StreamSettings = StreamSettings(),
          indices: Collection[int] | None = None, exclude: Collection[int] = ()) -> list[Path]:
    """Write one FLAC per speaker and ``labels.csv`` into ``out``; returns the FLAC paths."""
    if not (fsdd / "recordings").is_dir():
        raise KwstreamError(f"no FSDD recordings folder in {fsdd}; pass --fsdd DIR")
    rng = np.random.default_rng(settings.seed)
    streams, rows = [], []
    for speaker in speakers:
        clips = []
        for digit, word in enumerate(DIGITS):
            available = recordings(fsdd, speaker, digit, indices, exclude)
            if len(available) < settings.per_digit:
                raise KwstreamError(f"speaker {speaker!r} has {len(available)} allowed recordings of {word}, "
                                    f"fewer than --per-digit {settings.per_digit}")
            chosen = rng.choice(len(available), size=settings.per_digit, replace=False)
            clips += [(word, read_audio(available[i])) for i in chosen]
        clips = [clips[i] for i in rng.permutation(len(clips))]
        audio, labels = build_stream(clips, settings, rng)
        streams.append((speaker, audio))
        rows += [(speaker, word, f"{start:.5f}", f"{end:.5f}") for word, start, end in labels]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for speaker, audio in streams:
        paths.append(out / f"{speaker}.flac")
        soundfile.write(paths[-1], audio, SAMPLE_RATE, subtype="PCM_16")
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["stream", "keyword", "start", "end"])
        writer.writerows(rows)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", required=True, help="comma-separated FSDD speakers, one stream each")
    parser.add_argument("--out", type=Path, required=True, help="folder for the FLACs and labels.csv")
    parser.add_argument("--per-digit", type=int, default=StreamSettings.per_digit, help="recordings of each digit per speaker")
    parser.add_argument("--indices", help="only recordings with these indices, e.g. 10-49 (default: all)")
    parser.add_argument("--exclude-index", default="", help="never these indices, e.g. 0-2 (the enrollment examples)")
    parser.add_argument("--fsdd", type=Path, default=DEFAULT_FSDD_DIR, help=f"FSDD folder (default: {DEFAULT_FSDD_DIR})")
    parser.add_argument("--seed", type=int, default=StreamSettings.seed)
    args = parser.parse_args(argv)
    try:
        if args.per_digit < 1:
            raise KwstreamError("--per-digit must be at least 1")
        speakers = [s for s in args.speakers.split(",") if s]
        indices = parse_indices(args.indices) if args.indices else None
        paths = build(args.fsdd, args.out, speakers, StreamSettings(per_digit=args.per_digit, seed=args.seed),
                      indices, parse_indices(args.exclude_index))
    except KwstreamError as exc:
        print(f"digit_streams: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(str(p) for p in paths)} and {args.out / 'labels.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
