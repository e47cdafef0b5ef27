"""What every kind of keyword scorer gives the spotter: typed (CTC), enrolled (DTW), classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from kwstream.model.encoder import EncodedFrames, Encoder


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
    needs_voice: bool
    """Optional (absent: False): whether the windows' frames must carry the speech embedding
    (``EncodedFrames.voice``), for voice keywords."""

    def score_frames(self, frames: EncodedFrames) -> list[KeywordMatch]:
        """One match per keyword, in the order of ``keywords``."""
        ...



def default_layer(encoder: Encoder, kind: Literal["enrolled", "classifier"]) -> int:
    """The encoder layer whose hidden states a scorer of ``kind`` reads unless told otherwise.

    ``enrolled`` (DTW against spoken examples): the layer whose features match a word best across
    speakers: for small models (4 blocks or fewer, like the bundled one) the block below the top,
    measured on spoken digits (docs/enrollment.md); for deeper ones the middle block, where word content peaks
    in wav2vec2 models (the top blocks of a CTC model lean to letters, those of a pretrained-only
    model to its training objective).

    ``classifier`` (a trained head): the top layer for a CTC fine-tuned model (most word-like, and
    the head learns to read it), two thirds up for a pretrained-only one (its top layers serve the
    pretraining task).
    """
    if kind == "enrolled":
        return max(1, encoder.layers - 1) if encoder.layers <= 4 else encoder.layers // 2
    return encoder.layers if encoder.has_ctc_head else max(1, round(2 * encoder.layers / 3))
