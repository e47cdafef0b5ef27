"""What the spotter hears and thinks, as plain events for dashboards, logs and a user's own UI.

Events reach ``Spotter(on_event=...)`` on the dispatcher thread, in stream order, interleaved with
the Detections themselves. Times are stream seconds. Nothing here knows who listens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kwstream.audio.convert import BlockFramer
from kwstream.stream.detector import WindowScore

SILENCE_DBFS = -120.0
"""Level reported for digital silence (log of zero)."""


CLIP_LEVEL = 0.999
"""A sample at or above this magnitude (full scale = 1) counts as clipped."""


@dataclass(frozen=True)
class Level:
    """Input level of one fixed block of audio."""

    time_s: float
    """Stream time at the end of the block."""
    rms_dbfs: float
    peak_dbfs: float
    clipped: bool
    """Some sample of the block reached full scale."""


def _dbfs(value: np.ndarray) -> np.ndarray:
    return np.where(value > 0, 20 * np.log10(np.maximum(value, 1e-12)), SILENCE_DBFS)


class LevelMeter:
    """Cuts the stream into fixed blocks and measures each, whatever size the audio arrives in."""

    def __init__(self, block_samples: int, sample_rate: int) -> None:
        self.block_samples = block_samples
        self.sample_rate = sample_rate
        self._framer = BlockFramer(block_samples)

    def push(self, audio: np.ndarray) -> list[Level]:
        first, blocks = self._framer.push(audio)
        n = len(blocks)
        peak = np.abs(blocks).max(axis=1) if n else np.zeros(0)
        rms = np.sqrt(np.mean(np.square(blocks, dtype=np.float64), axis=1)) if n else np.zeros(0)
        ends = first + self.block_samples * np.arange(1, n + 1)
        return [
            Level(float(end / self.sample_rate), float(r), float(p), bool(c))
            for end, r, p, c in zip(ends, _dbfs(rms), _dbfs(peak), peak >= CLIP_LEVEL)
        ]


@dataclass(frozen=True)
class VoiceActivity:
    """The VAD opened (speech) or closed (silence) a span at ``time_s``."""

    time_s: float
    voiced: bool


@dataclass(frozen=True)
class ScoredWindow:
    """Every keyword's score in one encoded window."""

    start_s: float
    end_s: float
    scores: dict[str, WindowScore]
    """Per keyword, its score and the stream seconds of its best alignment in the window."""
    compute_s: float
    """Encoder + scoring time for this window."""
    span: int = 0
    """The VAD speech span the window belongs to (the detector smooths within a span)."""
