"""Read a Speech Commands layout: one folder per keyword, ``_unknown_`` (other words) and
``_background_noise_`` (long noise files), and split it by speaker so validation speakers are unheard.

Speakers come from file names: Speech Commands' ``{speaker}_nohash_{n}.wav`` and the Free Spoken
Digit Dataset's ``{digit}_{speaker}_{index}.wav``; any other name counts as its own speaker. As in
Speech Commands, a speaker is in validation when a hash of its name falls below the validation
percentage, so adding files never moves a speaker from one side to the other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kwstream.errors import KwstreamError
from kwstream.keywords.classifier.head import SILENCE_CLASS, UNKNOWN_CLASS

BACKGROUND_FOLDER = "_background_noise_"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
SPEECH_COMMANDS_NAME = re.compile(r"^(?P<speaker>[^_]+)_nohash_\d+$")
FSDD_NAME = re.compile(r"^\d+_(?P<speaker>[^_]+)_\d+$")


class DatasetError(KwstreamError):
    """A data folder that cannot be read or does not have the Speech Commands layout."""


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    speaker: str


@dataclass(frozen=True)
class Dataset:
    keywords: list[str]
    """Folder names of the keywords, sorted."""
    train: list[Clip]
    validation: list[Clip]
    background: list[Path]
    """Long noise files: mixed into training clips, cut into ``_silence_`` clips, and measured for false alarms."""

    @property
    def classes(self) -> list[str]:
        return [*self.keywords, UNKNOWN_CLASS, SILENCE_CLASS]


def speaker_of(path: Path) -> str:
    stem = path.stem
    for pattern in (SPEECH_COMMANDS_NAME, FSDD_NAME):
        found = pattern.match(stem)
        if found:
            return found["speaker"]
    return stem


def hash_percent(name: str) -> float:
    """Where ``name`` falls in [0, 100), stable across runs and machines."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10_000 / 100


def _audio_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    except OSError as exc:
        raise DatasetError(f"cannot read {folder}: {exc.strerror or exc}") from None


def read_dataset(root: str | Path, val_percent: float = 10.0, val_speakers: Sequence[str] = ()) -> Dataset:
    """The clips under ``root``, split by speaker: ``val_speakers`` when given (classes none of them
    speak, such as ``_unknown_``, fall back to the hash split), else the hash split at ``val_percent``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"no such data folder: {root}")
    folders = sorted(p for p in _subfolders(root) if not p.name.startswith(".") and p.name != BACKGROUND_FOLDER)
    keywords = [p.name for p in folders if p.name != UNKNOWN_CLASS]
    if not keywords:
        raise DatasetError(f"{root} has no keyword folders (expected one folder of clips per keyword, Speech Commands layout)")
    if UNKNOWN_CLASS not in [p.name for p in folders]:
        raise DatasetError(f"{root} has no {UNKNOWN_CLASS} folder of other words, which the head needs to learn what is not a keyword")
    background = _audio_files(root / BACKGROUND_FOLDER) if (root / BACKGROUND_FOLDER).is_dir() else []
    if not background:
        raise DatasetError(f"{root} has no {BACKGROUND_FOLDER} folder with noise recordings")
    clips = []
    for folder in folders:
        files = _audio_files(folder)
        if not files:
            raise DatasetError(f"class {folder.name!r} has no audio files ({', '.join(AUDIO_SUFFIXES)}) in {folder}")
        clips += [Clip(f, folder.name, speaker_of(f)) for f in files]
    missing = sorted(set(val_speakers) - {c.speaker for c in clips})
    if missing:
        raise DatasetError(f"validation speaker(s) {', '.join(missing)} have no files in {root}")
    named = set(val_speakers)
    spoken_by_named = {c.label for c in clips if c.speaker in named}

    def in_validation(clip: Clip) -> bool:
        if clip.label in spoken_by_named:
            return clip.speaker in named
        return hash_percent(clip.speaker) < val_percent

    train = [c for c in clips if not in_validation(c)]
    validation = [c for c in clips if in_validation(c)]
    empty = sorted({c.label for c in clips} - {c.label for c in train})
    if empty:
        raise DatasetError(f"class(es) {', '.join(empty)} have no training files left after the speaker split; "
                           "lower --val-percent or name other --val-speakers")
    return Dataset(keywords, train, validation, background)


def _subfolders(root: Path) -> list[Path]:
    try:
        return [p for p in root.iterdir() if p.is_dir()]
    except OSError as exc:
        raise DatasetError(f"cannot read {root}: {exc.strerror or exc}") from None
