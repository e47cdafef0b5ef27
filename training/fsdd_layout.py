"""Build a Speech Commands layout from the Free Spoken Digit Dataset, for ``kwstream train``.

Digits chosen as keywords get a folder each (``zero`` ... ``nine``) with their FSDD files, names
kept (``{digit}_{speaker}_{index}.wav``) so the speaker split still works. ``_unknown_`` holds the
other digits, if any, and words that are not digits spoken by espeak-ng and flite voices (each
voice a speaker: ``{voice}_nohash_{n}.wav``). ``_background_noise_`` holds generated noises: white,
pink, brown, mains hum, a running tap and clattering dishes (one minute each by default).

    python -m training.fsdd_layout --fsdd ../shared/data/fsdd \\
        --speakers jackson,lucas,nicolas,theo --out /tmp/fsdd_kws

The FSDD recordings are CC BY-SA 4.0 (Zohar Jackson et al.); the folder gets a note saying so.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from kwstream.audio.io import SAMPLE_RATE
from kwstream.errors import KwstreamError
from kwstream.keywords.classifier.head import UNKNOWN_CLASS
from training.augment import pink_noise, white_noise
from training.digit_streams import DEFAULT_FSDD_DIR
from kwstream.train.dataset import BACKGROUND_FOLDER, FSDD_NAME

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
UNKNOWN_WORDS = (
    "yes no up down left right on off stop go house bed bird cat dog happy tree wow marvin sheila follow learn visual "
    "forward backward hello water music light open close start play pause next back table window paper green yellow "
    "orange purple morning evening coffee garden river mountain simple little number hundred thousand zebra seventeen "
    "twelve twenty thirty ninety fifty eleven"
).split()
"""Words that are not digits, with a few number words that share sounds with them (seventeen, ninety)."""
ESPEAK_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
ESPEAK_VARIANTS = ["", "+f2", "+m3", "+f4"]
FLITE_VOICES = ["kal", "awb", "rms"]  # not slt: festvox-us-slt-hts's speaker, reserved for evaluation
NOISE_S = 60.0


def _espeak(word: str, voice: str, rng: np.random.Generator, out: Path) -> None:
    speed, pitch = int(rng.integers(120, 200)), int(rng.integers(25, 75))
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), word],
                   check=True, capture_output=True)


def _flite(word: str, voice: str, rng: np.random.Generator, out: Path) -> None:
    stretch = rng.uniform(0.8, 1.25)
    subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.2f}", "-t", word, "-o", str(out)],
                   check=True, capture_output=True)


def synthesize_unknown(out: Path, per_voice: int, seed: int = 0) -> int:
    """``per_voice`` random non-digit words from each synthetic voice into ``out``; returns the count."""
    for tool in ("espeak-ng", "flite"):
        if shutil.which(tool) is None:
            raise KwstreamError(f"{tool} is not installed; it speaks the {UNKNOWN_CLASS} words (apt-get install {tool})")
    rng = np.random.default_rng(seed)
    jobs = [(_espeak, v + variant, f"espeak-{v}{variant}") for v in ESPEAK_VOICES for variant in ESPEAK_VARIANTS]
    jobs += [(_flite, v, f"flite-{v}") for v in FLITE_VOICES]
    count = 0
    with tqdm(total=len(jobs) * per_voice, desc="speaking unknown words", unit="word") as bar:
        for speak, voice, speaker in jobs:
            for n, word in enumerate(rng.choice(UNKNOWN_WORDS, size=per_voice, replace=False)):
                speak(str(word), voice, rng, out / f"{speaker.replace('_', '-')}_nohash_{n}.wav")
                count += 1
                bar.update()
    return count


def _brown(rng: np.random.Generator, n: int) -> np.ndarray:
    walk = np.cumsum(rng.standard_normal(n))
    walk -= np.convolve(walk, np.ones(4001) / 4001, mode="same")  # keep the random walk from drifting
    return walk / (walk.std() + 1e-9)


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    base = rng.choice([50.0, 60.0])
    tone = sum(np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 8))
    return tone / tone.std() + 0.1 * pink_noise(rng, n)


def _tap(rng: np.random.Generator, n: int) -> np.ndarray:
    """Running water: band-limited noise whose loudness wanders."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum *= np.exp(-0.5 * ((freqs - 2500) / 1200) ** 2)
    noise = np.fft.irfft(spectrum, n)
    envelope = 1 + 0.4 * np.interp(np.arange(n), np.linspace(0, n, 200), rng.standard_normal(200))
    return noise * envelope / (noise * envelope).std()


def _dishes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Clattering: short decaying resonances at random times over a quiet room."""
    out = 0.05 * pink_noise(rng, n)
    for start in rng.integers(0, n - 4000, size=int(n / SAMPLE_RATE * 1.5)):
        length = int(rng.integers(800, 4000))
        t = np.arange(length) / SAMPLE_RATE
        ring = np.sin(2 * np.pi * rng.uniform(1500, 6000) * t) * np.exp(-t * rng.uniform(30, 120))
        out[start:start + length] += rng.uniform(0.3, 1.0) * ring
    return out / out.std()


NOISES = {"white_noise": white_noise, "pink_noise": pink_noise, "brown_noise": _brown, "mains_hum": _hum,
          "running_tap": _tap, "dishes": _dishes}


def write_noises(out: Path, seconds: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    for name, make in NOISES.items():
        audio = make(rng, n) * 10 ** (rng.uniform(-40, -25) / 20)
        soundfile.write(out / f"{name}.wav", np.clip(audio, -1, 1).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def build(fsdd: Path, out: Path, speakers: Sequence[str], keywords: Sequence[str], per_voice: int, noise_s: float,
          seed: int = 0) -> None:
    """Write the layout into ``out`` (which must not exist yet), all at once: it is built in a
    temporary folder beside it and renamed when complete."""
    if out.exists():
        raise KwstreamError(f"{out} already exists; choose a new folder")
    unknown_digits = [d for d in DIGITS if d not in keywords]
    bad = sorted(set(keywords) - set(DIGITS))
    if bad:
        raise KwstreamError(f"keywords must be digit names ({', '.join(DIGITS)}), not {', '.join(bad)}")
    if not (fsdd / "recordings").is_dir():
        raise KwstreamError(f"no FSDD recordings folder in {fsdd}; pass --fsdd DIR")
    files = sorted((fsdd / "recordings").glob("*.wav"))
    chosen = [f for f in files if FSDD_NAME.match(f.stem) and f.stem.split("_")[1] in speakers]
    if not chosen:
        raise KwstreamError(f"no FSDD recordings of {', '.join(speakers)} in {fsdd}")
    missing = sorted(set(speakers) - {f.stem.split("_")[1] for f in chosen})
    if missing:
        raise KwstreamError(f"no FSDD recordings of speaker(s) {', '.join(missing)} in {fsdd}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        staging = Path(tmp) / out.name
        for folder in [*keywords, UNKNOWN_CLASS, BACKGROUND_FOLDER]:
            (staging / folder).mkdir(parents=True)
        for f in tqdm(chosen, desc="copying digits", unit="file"):
            word = DIGITS[int(f.stem.split("_")[0])]
            shutil.copy2(f, staging / (word if word in keywords else UNKNOWN_CLASS) / f.name)
        synthesize_unknown(staging / UNKNOWN_CLASS, per_voice, seed)
        write_noises(staging / BACKGROUND_FOLDER, noise_s, seed)
        (staging / "LICENSE.md").write_text(
            "Keyword clips: Free Spoken Digit Dataset (Zohar Jackson et al.), CC BY-SA 4.0. "
            f"{UNKNOWN_CLASS}: espeak-ng and flite voices" + (f" and the digits {', '.join(unknown_digits)}" if unknown_digits else "")
            + f". {BACKGROUND_FOLDER}: generated noise.\n")
        staging.rename(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", type=Path, default=DEFAULT_FSDD_DIR,
                        help=f"FSDD folder, holding recordings/, as for training.digit_streams (default: {DEFAULT_FSDD_DIR})")
    parser.add_argument("--out", type=Path, required=True, help="new folder to write")
    parser.add_argument("--speakers", required=True, help="comma-separated FSDD speakers to include")
    parser.add_argument("--keywords", default=",".join(DIGITS), help="digit names that become keywords; other digits are unknown")
    parser.add_argument("--unknown-per-voice", type=int, default=15, help="unknown words per synthetic voice (36 voices)")
    parser.add_argument("--noise-s", type=float, default=NOISE_S, help="length of each background noise file")
    args = parser.parse_args(argv)
    try:
        build(args.fsdd, args.out, [s for s in args.speakers.split(",") if s], [k for k in args.keywords.split(",") if k],
              args.unknown_per_voice, args.noise_s)
    except (KwstreamError, subprocess.CalledProcessError) as exc:
        print(f"fsdd_layout: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
