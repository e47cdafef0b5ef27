"""Audio at rest: the sample rate every stage works at, whole recordings read as arrays, raw PCM."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import soxr

from kwstream.audio.convert import to_mono
from kwstream.errors import AudioInputError

SAMPLE_RATE = 16000
"""The rate every stage after the source works at (wav2vec2's rate)."""
_KINDS = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}


def read_audio(path: str | Path) -> np.ndarray:
    """A whole recording (WAV, FLAC, OGG, ...: whatever libsndfile reads, any rate and channel count)
    as 16 kHz mono float32, for examples and test material; streams go through AudioFile."""
    import soundfile

    check_audio_file(Path(path))
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise unreadable(path, exc) from None
    audio = to_mono(audio)
    return soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32) if rate != SAMPLE_RATE else audio


def not_a_file(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a recording, found with ``stat`` alone (never ``open``), or None
    where it is a regular file (or a symbolic link to one)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"no such audio file: {path} (a symbolic link to {os.readlink(path)}, which does not exist)"
        return f"no such audio file: {path}"
    except OSError as exc:  # a symbolic link loop, a folder without search permission
        return f"cannot read {path}: {exc.strerror}"
    if stat.S_ISDIR(mode):
        return f"{path} is a directory, not an audio file"
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS.items() if test(mode)), "neither file nor folder")
        return f"not a regular file: {path} ({kind})"
    return None


def check_audio_file(path: Path) -> None:
    """Raise the error every command gives for a path that is not a file to read."""
    if problem := not_a_file(path):
        raise AudioInputError(problem)


def audio_info(path: Path):
    """A recording's header (``soundfile.info``: length, rate, channels) without decoding it, with the errors every
    command gives; a path that is no regular file is refused before it is opened (a FIFO would wait for a writer)."""
    import soundfile

    check_audio_file(path)
    try:
        return soundfile.info(str(path))
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise unreadable(path, exc) from None


def unreadable(path: str | Path, exc: Exception) -> AudioInputError:
    """The error every command gives for a file that libsndfile cannot read as audio."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return AudioInputError(f"cannot read {path} as audio: {reason}")

