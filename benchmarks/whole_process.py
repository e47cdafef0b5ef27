"""Whole-process CPU seconds and peak memory of ``kwstream listen`` against PocketSphinx's keyword
mode on the same recording, in one run:

    python benchmarks/whole_process.py --pocketsphinx-python PYTHON [--repeats 5]

The recording is 3 minutes of spoken digits, the Free Spoken Digit Dataset's recordings
(``--fsdd``, default ../shared/data/fsdd/recordings) in name order, resampled to 16 kHz with a
0.15 s pause between words. Both spot zero, three, seven and nine, each as a new process reading
the file as fast as it can (``listen --file --fast``; PocketSphinx from raw 16 kHz samples in 20 ms
blocks), so the figures include start-up. PocketSphinx stays out of kwstream's dependencies:
PYTHON is an environment that has it (``pip install 'kwstream[bench]'`` or ``pip install pocketsphinx``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from kwstream.audio.io import SAMPLE_RATE, read_audio

KEYWORDS = ("zero", "three", "seven", "nine")
DURATION_S = 180.0
GAP_S = 0.15
POCKETSPHINX = """
import sys
from pocketsphinx import Decoder
decoder = Decoder(kws=sys.argv[2], samprate=16000, loglevel="FATAL")
decoder.start_utt()
with open(sys.argv[1], "rb") as f:
    while block := f.read(640):
        decoder.process_raw(block, False, False)
        if decoder.hyp() is not None:
            print(decoder.hyp().hypstr)
            decoder.end_utt()
            decoder.start_utt()
decoder.end_utt()
"""


def recording(fsdd: Path) -> np.ndarray:
    """Spoken digits back to back, cut to ``DURATION_S``."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    pieces, samples = [], 0
    for path in sorted(fsdd.glob("*.wav")):
        audio = read_audio(path)
        pieces += [audio, gap]
        samples += len(audio) + len(gap)
        if samples >= DURATION_S * SAMPLE_RATE:
            break
    return np.concatenate(pieces)[: int(DURATION_S * SAMPLE_RATE)]


def measure(command: list[str]) -> tuple[float, float, str]:
    """CPU seconds (all threads), peak resident MB and stdout of one run of ``command`` (Linux, macOS)."""
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own resources
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command)
        out.seek(0)
        return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pocketsphinx-python", required=True, help="a Python with pocketsphinx installed")
    parser.add_argument("--fsdd", type=Path, default=Path("../shared/data/fsdd/recordings"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    audio = recording(args.fsdd)
    with tempfile.TemporaryDirectory() as tmp:
        wav, raw, kws = Path(tmp) / "digits.wav", Path(tmp) / "digits.raw", Path(tmp) / "keywords.kws"
        soundfile.write(wav, audio, SAMPLE_RATE)
        (np.clip(audio, -1, 1) * 32767).astype("<i2").tofile(raw)
        kws.write_text("".join(f"{word} /1e-20/\n" for word in KEYWORDS))
        commands = {
            "kwstream": [sys.executable, "-m", "kwstream", "listen", "--keywords", ",".join(KEYWORDS), "--file", str(wav), "--fast"],
            "pocketsphinx": [args.pocketsphinx_python, "-c", POCKETSPHINX, str(raw), str(kws)],
        }
        runs: dict[str, list[tuple[float, float, str]]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():  # interleaved, so that both meet the same machine
                runs[name].append(measure(command))
    print(f"{len(audio) / SAMPLE_RATE:.0f} s of FSDD digits; medians of {args.repeats} runs")
    for name, results in runs.items():
        cpu = statistics.median(r[0] for r in results)
        detections = results[-1][2].count("\n")
        print(f"  {name:<13} {cpu:6.2f} CPU-s  peak {max(r[1] for r in results):4.0f} MB  detections {detections}"
              f"  (CPU-s of each run: {', '.join(f'{r[0]:.2f}' for r in results)})")
    ratio = statistics.median(r[0] for r in runs["kwstream"]) / statistics.median(r[0] for r in runs["pocketsphinx"])
    print(f"  kwstream / pocketsphinx: {ratio:.2f}x")


if __name__ == "__main__":
    main()
