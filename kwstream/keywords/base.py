"""What every kind of keyword scorer gives the spotter: typed (CTC), enrolled (DTW), classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kwstream.encoder import EncodedFrames


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
