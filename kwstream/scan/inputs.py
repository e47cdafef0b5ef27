"""Which recordings a scan reads: files, folders walked recursively, glob patterns, a file list."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from kwstream.errors import AudioInputError
from kwstream.audio.io import not_a_file


def audio_suffixes() -> frozenset[str]:
    """File name endings of every format libsndfile reads (``.wav``, ``.flac``, ``.ogg``, ``.mp3``, ...)."""
    import soundfile

    return frozenset("." + name.lower() for name in soundfile.available_formats()) | {".oga", ".opus", ".aif"}


def find_files(paths: Iterable[str | Path], from_list: str | Path | None = None) -> list[Path]:
    """The recordings to scan, sorted and without repeats. A file named outright is taken whatever its
    name (a corrupt one becomes an error row); in folders and glob matches only audio file names count.
    A path on the command line that does not exist is a mistake to stop at; one in ``from_list`` (a
    list made earlier, of an archive that changes) becomes an error row, and the scan goes on. What is
    no regular file (a FIFO, a socket, a broken symbolic link) is never opened here: found in a folder,
    a glob or the list it becomes an error row; named on the command line it stops the scan."""
    suffixes = audio_suffixes()
    named = [str(p) for p in paths]
    listed: set[str] = set()
    if from_list is not None:
        try:
            listed = {line.strip() for line in Path(from_list).read_text().splitlines() if line.strip()}
        except OSError as exc:
            raise AudioInputError(f"cannot read the file list {from_list}: {exc.strerror}") from None
        named += sorted(listed)
    found: set[Path] = set()
    for name in named:
        path = Path(name)
        if path.is_dir():
            found |= {p for p in path.rglob("*") if _is_recording(p, suffixes)}
        elif path.is_file():
            found.add(path)
        elif glob.has_magic(name):
            found |= {Path(p) for p in glob.glob(name, recursive=True) if _is_recording(Path(p), suffixes)}
        elif name in listed:
            found.add(path)  # its row will say why it cannot be read
        elif os.path.lexists(name):  # a FIFO, a socket, a broken symbolic link
            raise AudioInputError(not_a_file(path) or f"cannot read {name}")
        else:
            raise AudioInputError(f"no such file or folder: {name}")
    if not found:
        raise AudioInputError(f"no audio files found in {', '.join(named) or 'the file list'}")
    return sorted(found)


def _is_recording(path: Path, suffixes: frozenset[str]) -> bool:
    """A folder's or a glob's entry to scan: an audio file name that is no folder. A broken symbolic
    link or a FIFO so named is kept, to become an error row rather than vanish from the results."""
    return path.suffix.lower() in suffixes and not path.is_dir()
