"""What every kind of keyword scorer gives the spotter: typed (CTC), enrolled (DTW), classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kwstream.model.encoder import EncodedFrames
from kwstream.errors import KeywordError


@dataclass(frozen=True)
class KeywordMatch:
    """The best match of one keyword in one scoring window, in frames of that window."""

    score: float
    """In [0, 1]; 0 when the keyword cannot fit in the window."""
    start_frame: int
    """First frame of the keyword."""
    end_frame: int
    """One past the keyword's last frame."""


class KeywordScorer(Protocol):
    """Scores its keywords in a window of encoded frames; one encoder pass serves every scorer."""

    keywords: list[str]
    """Names the detections carry, unique across the scorers of one spotter."""
    layers: tuple[int, ...]
    """Hidden-state layers the scorer needs from the encoder (empty: CTC log-probabilities only)."""
    thresholds: dict[str, float | None]
    """A threshold per keyword measured for it (by enrollment or training), or None for the
    model's calibrated default."""

    def score_frames(self, frames: EncodedFrames) -> list[KeywordMatch]:
        """One match per keyword, in the order of ``keywords``."""
        ...


def split_threshold(spec: str) -> tuple[str, float | None]:
    """``"name"`` or ``"name:0.8"`` from the command line: the name, and the threshold in [0, 1] if given."""
    name, sep, threshold = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not sep:
        return name, None
    try:
        value = float(threshold)
    except ValueError:
        raise KeywordError(f"threshold of {name!r} must be a number in [0, 1], got {threshold!r}") from None
    if not 0.0 <= value <= 1.0:
        raise KeywordError(f"threshold of {name!r} must be in [0, 1], got {value}")
    return name, value
