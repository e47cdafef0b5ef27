"""Audio at rest: the sample rate every stage works at, whole recordings read as arrays, raw PCM, and what
is checked about a recording's file before and after decoding it."""

from __future__ import annotations

import logging
import os
import shlex
import stat
import struct
from pathlib import Path

import numpy as np
import soxr

from kwstream.audio.convert import full_scale, to_mono
from kwstream.errors import AudioInputError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""The rate every stage after the source works at (wav2vec2's rate)."""
_KINDS = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
UNRECOGNISED_FORMAT = 1
"""libsndfile's SF_ERR_UNRECOGNISED_FORMAT: no header it knows."""
MPEG_SUFFIXES = frozenset({".mp1", ".mp2", ".mp3", ".mpga"})
"""libsndfile takes a file for MPEG audio when it starts with a frame sync (11 bits set), as headerless 16-bit PCM
often does (a first sample of -1 is 0xFFFF), and decodes noise from it: MPEG is believed only of a file so named."""
RAW_SUFFIXES = frozenset({"", ".raw", ".pcm", ".s16", ".s16le", ".bin", ".snd"})
"""Names headerless PCM is given: only for these does an unreadable file's message say how to pass raw PCM."""
UNSIZED_FROM = 0x7FFFF000
"""Data sizes from this up are what WAV writers that cannot seek back (a pipe, a recorder still running) leave in
the header (sox 0x7FFFF000, arecord 0x80000000, others 0xFFFFFFFF), as is 0."""


def read_audio(path: str | Path) -> np.ndarray:
    """A whole recording (WAV, FLAC, OGG, ...: whatever libsndfile reads, any rate and channel count)
    as 16 kHz mono float32, for examples and test material; streams go through AudioFile."""
    import soundfile

    audio_info(Path(path))  # what no command would read (no file, no header) is refused before it is decoded
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise unreadable(path, exc) from None
    if problem := truncated(path):
        log.warning("%s: %s", path, problem)
    if not np.isfinite(audio).all():
        log.warning("%s: NaN or infinite samples, heard as silence", path)
    audio = to_mono(full_scale(audio))
    return soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32) if rate != SAMPLE_RATE else audio


def not_a_file(path: str | Path, stream_hint: str = "") -> str | None:
    """Why ``path`` cannot be read as a recording, found with ``stat`` alone (never ``open``), or None
    where it is a regular file (or a symbolic link to one). ``stream_hint``: what to add where it is a stream (a
    FIFO, a device such as ``/dev/stdin``), for a command with a way round it."""
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
        return f"not a regular file: {path} ({kind})" + (f"; {stream_hint}" if stream_hint else "")
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
        info = soundfile.info(str(path))
    except TypeError:  # soundfile's "samplerate must be specified": a name ending .raw, which it reads as headerless
        raise headerless(path, "no header (a .raw file)") from None
    except soundfile.LibsndfileError as exc:
        if exc.code == UNRECOGNISED_FORMAT:
            raise headerless(path, "no header libsndfile recognises (WAV, FLAC, OGG, MP3, ...)") from None
        raise unreadable(path, exc) from None
    except (OSError, RuntimeError) as exc:
        raise unreadable(path, exc) from None
    if info.format == "MP3" and path.suffix.lower() not in MPEG_SUFFIXES and not _has_id3_tag(path):
        raise headerless(path, "it starts as MPEG audio does, but is not named .mp3 (rename it if it is MP3)")
    return info


def _has_id3_tag(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(3) == b"ID3"


def headerless(path: Path, why: str) -> AudioInputError:
    """The error for a file with no header libsndfile knows, with how raw PCM is read where the file may be that: a
    compressed file (m4a, ...) piped in as PCM would be heard as noise."""
    hint = ""
    if path.suffix.lower() in RAW_SUFFIXES:
        hint = f"; raw 16 kHz mono s16le PCM can be read from stdin: kwstream listen --file - < {shlex.quote(str(path))}"
    return AudioInputError(f"cannot read {path} as audio: {why}{hint}")


def unreadable(path: str | Path, exc: Exception) -> AudioInputError:
    """The error every command gives for a file that libsndfile cannot read as audio."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return AudioInputError(f"cannot read {path} as audio: {reason}")


def truncated(path: str | Path) -> str | None:
    """A WAV whose data chunk is shorter than its header says (a copy cut short), as "truncated: header
    says N s, file holds M s": libsndfile reads it as a shorter recording without a word. None for any
    other file, or a header a streaming writer left unsized."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            if (head := f.read(12))[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            byte_rate = 0
            while len(chunk := f.read(8)) == 8:
                name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"data":
                    held = path.stat().st_size - f.tell()
                    if size == 0 or size >= UNSIZED_FROM or byte_rate == 0 or size - held <= byte_rate // 100:
                        return None  # within 10 ms: a writer's rounding, not a cut copy
                    return f"truncated: header says {size / byte_rate:.2f} s, file holds {held / byte_rate:.2f} s"
                if name == b"fmt " and size >= 12:
                    byte_rate = struct.unpack("<I", f.read(12)[8:12])[0]
                    size -= 12
                f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to an even length
    except (OSError, struct.error):
        return None  # reading the audio itself reports a file it cannot read
    return None
