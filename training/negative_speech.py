"""Keyword-free speech for calibrating enrolled keywords: ``kwstream/assets/negatives/speech.ogg``.

Enrollment sets each keyword's threshold from how it scores on speech that does not hold it
(``kwstream.enroll.calibration``), so the package ships a few minutes of such speech: real people's
words and short phrases on home microphones (``REAL``: English and Spanish, redistributable, no
digits, since the development measurements enroll digits), each clip trimmed to its speech by the
VAD, with pauses between them. It replaced synthesised sentences (espeak-ng, flite), which score far
lower than real speech does, so that thresholds calibrated on them landed low (docs/enrollment.md).
No FSDD speaker, no wake-word benchmark clip and no reserved voice or data set is in it (see
DESIGN.md). Rebuild: ``python -m training.negative_speech [--data ../shared/data]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile

from kwstream.assets import asset_path
from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.enroll.enroll import EnrollSettings, voiced_span

PAUSE_S = 0.4
MARGIN_S = 0.1
"""Audio kept on each side of a clip's speech."""
COMPRESSION = 1.0
"""Vorbis compression level (0-1): the smallest file, about 21 kbit/s."""
REAL = [("precise/not-wake-words/en", 40), ("precise/not-wake-words/es", 24), ("precise/athena", 5), ("precise/amelia", 5),
        ("precise/android", 5), ("precise/heychatterbox", 5)] + [
    (f"speech_commands/{word}", 3) for word in "bed bird cat dog down go happy house left marvin no off on right sheila stop tree up wow yes".split()]
"""(folder under the shared data, clips taken in name order): Mycroft's Precise community recordings
(public domain) and Google's Speech Commands (CC BY 4.0), every word but the digits. ``training.corpus``
keeps these precise clips out of training."""


def real_speech(data: Path) -> np.ndarray:
    """The ``REAL`` clips, each trimmed to its speech at its own level, with pauses between and before them."""
    pause, margin = np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32), int(MARGIN_S * SAMPLE_RATE)
    settings = EnrollSettings()
    parts = [pause]
    for folder, count in REAL:
        for path in sorted(p for p in (data / folder).iterdir() if p.suffix in (".wav", ".flac"))[:count]:
            audio = read_audio(path)
            span = voiced_span(audio, settings.trim_vad, settings.join_gap_s)
            if span is not None:
                parts += [audio[max(0, span[0] - margin):span[1] + margin], pause]
    return np.concatenate(parts)


def build(out: Path, data: Path) -> float:
    """Write the speech to ``out``; returns its length in seconds."""
    audio = real_speech(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    with soundfile.SoundFile(out, "w", SAMPLE_RATE, 1, format="OGG", subtype="VORBIS", compression_level=COMPRESSION) as f:
        for start in range(0, len(audio), SAMPLE_RATE):  # libsndfile's Vorbis encoder crashes on one large write
            f.write(audio[start:start + SAMPLE_RATE])
    return len(audio) / SAMPLE_RATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=asset_path("negatives", "speech.ogg"))
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                        help="the shared data holding REAL's folders")
    args = parser.parse_args()
    seconds = build(args.out, args.data)
    print(f"wrote {seconds:.0f} s of keyword-free speech to {args.out}")


if __name__ == "__main__":
    main()
