"""What a scan checks about a file beyond decoding it: that a WAV holds the audio its header promises
(libsndfile silently reads a truncated one as a shorter recording)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

UNSIZED_FROM = 0x7FFFF000
"""Data sizes from this up are what WAV writers that cannot seek back (a pipe, a recorder still running) leave in
the header (sox 0x7FFFF000, arecord 0x80000000, others 0xFFFFFFFF), as is 0."""


def truncated(path: str | Path) -> str | None:
    """A WAV whose data chunk is shorter than its header says (a copy cut short), as "truncated: header
    says N s, file holds M s"; None for any other file, or a header a streaming writer left unsized."""
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
                    if size == 0 or size >= UNSIZED_FROM or size <= held or byte_rate == 0:
                        return None
                    return f"truncated: header says {size / byte_rate:.2f} s, file holds {held / byte_rate:.2f} s"
                if name == b"fmt " and size >= 12:
                    byte_rate = struct.unpack("<I", f.read(12)[8:12])[0]
                    size -= 12
                f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to an even length
    except (OSError, struct.error):
        return None  # the scan itself reports a file it cannot read
    return None
