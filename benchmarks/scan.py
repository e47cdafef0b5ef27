"""Throughput of ``kwstream scan`` on an hour of real speech: audio hours per wall-clock hour and
worker CPU-seconds per audio hour, with 1 and 2 local worker processes and 2 Ray actors (a local
Ray cluster the scan starts itself):

    python benchmarks/scan.py [--hours 1.0] [--folder DIR] [--configs 1,2,ray2,archive1]

The folder is made once (and kept in DIR if given): every Free Spoken Digit Dataset recording of
../shared/data/fsdd (4 speakers, 2,000 digits) and every Precise community recording of
../shared/data/precise except its noise/ folder (972 wake words and phrases), resampled to 16 kHz
in name order with a 0.3 s pause after each, cut into 5-minute WAV files and cycled until the hour
is full (the unique material is about 45 minutes, so part of it comes twice). Each configuration is
a new ``kwstream scan`` process (start-up, model loads and, for Ray, the cluster's start included in
the wall time); CPU-seconds are the workers' own on the files (from the manifest), which leaves
out start-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.scan.manifest import manifest_path
from kwstream.stream.pipeline import PipelineSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KEYWORDS = "zero,three,seven,nine,hey,stop"
FILE_S = 300.0
GAP_S = 0.3
ARCHIVE = PipelineSettings.archive()
CONFIGS = {"1": ["--workers", "1"], "2": ["--workers", "2"], "ray2": ["--ray", "--workers", "2"],
           "archive1": ["--workers", "1", "--window-ms", str(round(ARCHIVE.window_s * 1000)),
                        "--hop-ms", str(round(ARCHIVE.hop_s * 1000)), "--smoothing-windows", str(ARCHIVE.detector.smoothing_windows)]}
"""Each worker runs the model on one thread (--threads 1), so that a worker is a core; ``archive1``: one
process with the faster windows of PipelineSettings.archive()."""


def material() -> list[Path]:
    precise = [p for p in sorted((DATA / "precise").rglob("*.flac")) if "noise" not in p.parts]
    return sorted((DATA / "fsdd" / "recordings").glob("*.wav")) + precise


def make_folder(folder: Path, hours: float) -> float:
    """Fill ``folder`` with ``hours`` of speech in 5-minute files (kept if already there); its length in seconds."""
    if list(folder.glob("*.wav")):
        return sum(soundfile.info(p).duration for p in folder.glob("*.wav"))
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    sources, total, index, part = material(), 0.0, 0, []
    while total < hours * 3600:
        clip = read_audio(sources[index % len(sources)])
        index += 1
        part += [clip, gap]
        length = sum(map(len, part)) / SAMPLE_RATE
        if length >= FILE_S or total + length >= hours * 3600:
            soundfile.write(folder / f"speech{len(list(folder.glob('*.wav'))):03d}.wav", np.concatenate(part), SAMPLE_RATE)
            total += length
            part = []
    return total


def run(folder: Path, config: str, out: Path) -> dict:
    command = [sys.executable, "-m", "kwstream", "scan", str(folder), "--keywords", KEYWORDS, "--out", str(out),
               "--overwrite", "--json", "--threads", "1", *CONFIGS[config]]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    records = [json.loads(line) for line in manifest_path(out).read_text().splitlines()[1:]]
    audio_h = sum(r["audio_s"] for r in records) / 3600
    return {"config": config, "wall_s": round(wall, 1), "audio_h": round(audio_h, 3),
            "audio_h_per_wall_h": round(audio_h / (wall / 3600), 1),
            "cpu_s_per_audio_h": round(sum(r["cpu_s"] for r in records) / audio_h, 1),
            "detections": json.loads(done.stdout.splitlines()[-1])["keywords"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--folder", type=Path, help="where the speech folder is made (and kept); default a temporary one")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"which of {', '.join(CONFIGS)} to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp) / "speech"
        folder.mkdir(parents=True, exist_ok=True)
        seconds = make_folder(folder, args.hours)
        print(f"{len(list(folder.glob('*.wav')))} files, {seconds / 3600:.2f} h of speech in {folder}", file=sys.stderr)
        print("| workers | wall s | audio h per wall-clock h | worker CPU-s per audio h |")
        print("| --- | ---: | ---: | ---: |")
        for config in args.configs.split(","):
            r = run(folder, config, Path(tmp) / f"results-{config}.jsonl")
            name = {"1": "1 process", "2": "2 processes", "ray2": "2 Ray actors", "archive1": "1 process, archive windows"}[config]
            print(f"| {name} | {r['wall_s']} | {r['audio_h_per_wall_h']} | {r['cpu_s_per_audio_h']} |", flush=True)
            print(json.dumps(r), file=sys.stderr)


if __name__ == "__main__":
    main()
