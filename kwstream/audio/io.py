"""Audio at rest: the sample rate every stage works at, whole recordings read as arrays, raw PCM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from kwstream.errors import AudioInputError

SAMPLE_RATE = 16000
"""The rate every stage after the source works at (wav2vec2's rate)."""


def read_audio(path: str | Path) -> np.ndarray:
    """A whole recording (WAV, FLAC, OGG, ...: whatever libsndfile reads, any rate and channel count)
    as 16 kHz mono float32, for examples and test material; streams go through AudioFile."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioInputError(f"cannot read {path}: {reason}") from None
    audio = audio.mean(axis=1)
    return soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32) if rate != SAMPLE_RATE else audio


def pcm16(audio: np.ndarray) -> bytes:
    """float32 audio as the raw signed 16-bit little-endian PCM that RawStdin reads."""
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
