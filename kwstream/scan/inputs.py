"""Which recordings a scan reads: files, folders walked recursively, glob patterns, a file list."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from kwstream.errors import AudioInputError


def audio_suffixes() -> frozenset[str]:
    """File name endings of every format libsndfile reads (``.wav``, ``.flac``, ``.ogg``, ``.mp3``, ...)."""
    import soundfile

    return frozenset("." + name.lower() for name in soundfile.available_formats()) | {".oga", ".opus", ".aif"}


def find_files(paths: Iterable[str | Path], from_list: str | Path | None = None) -> list[Path]:
    """The recordings to scan, sorted and without repeats. A file named outright is taken whatever its
    name (a corrupt one becomes an error row); in folders and glob matches only audio file names count.
    A path on the command line that does not exist is a mistake to stop at; one in ``from_list`` (a
    list made earlier, of an archive that changes) becomes an error row, and the scan goes on."""
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
            found |= {p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes}
        elif path.is_file():
            found.add(path)
        elif glob.has_magic(name):
            found |= {Path(p) for p in glob.glob(name, recursive=True) if Path(p).is_file() and Path(p).suffix.lower() in suffixes}
        elif name in listed:
            found.add(path)  # its row will say "no such audio file"
        else:
            raise AudioInputError(f"no such file or folder: {name}")
    if not found:
        raise AudioInputError(f"no audio files found in {', '.join(named) or 'the file list'}")
    return sorted(found)
