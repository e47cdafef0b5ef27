"""Threshold, smoothing and refractory logic: one detection per spoken keyword.

Per keyword, the scores of the last few windows of the current speech span are averaged, so that
a single-window spike does not fire, and a detection takes the start and end of the current
window's alignment. Averaging costs a hop, though: when a keyword is first complete in a window,
the window before held only part of it (a low score), so the mean mostly stays under the threshold
until the next window. The usual fix is a two-level trigger: the mean of the last windows
at the keyword's threshold, or the current window alone at a higher bar (the threshold plus
``lone_window_margin``). A clear occurrence then fires as soon as one window holds all of it; a
marginal one still needs its windows to agree. Both tests are one number, the larger of the mean
and the window's score less the margin, compared with the threshold, so that a replay at any
threshold (``kwstream.stream.replay``) sees exactly what fires. A keyword does not fire again for
an occurrence that starts before the end of the last one plus the refractory period.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorSettings:
    """How scores become detections; each keyword's threshold is its KeywordSet's (KeywordSettings)."""

    smoothing_windows: int = 2
    """How many consecutive windows of a speech span are averaged (1 = no smoothing)."""
    lone_window_margin: float = 0.2
    """A window fires on its own, without the average, when its score reaches the threshold plus
    this much (``math.inf``: never, only the average fires). 0.2 was chosen on the development
    sets (docs/serving.md, *Latency*): the smallest margin tried (0 to 0.3) that lowers no
    keyword's recall and adds no false alarm; it brings the median latency down by 0.1-0.17 s."""
    refractory_s: float = 0.3
    """Quiet time after a keyword's end before the same keyword may fire again."""

    def __post_init__(self) -> None:
        if self.smoothing_windows < 1:
            raise ValueError("smoothing_windows must be at least 1")
        if not self.lone_window_margin >= 0:
            raise ValueError("lone_window_margin must not be negative")
        if self.refractory_s < 0:
            raise ValueError("refractory_s must not be negative")


@dataclass(frozen=True)
class Detection:
    """A spotted keyword. Times are stream seconds since the stream began, except ``wall_time``."""

    keyword: str
    score: float
    """The number that crossed the threshold: the windows' mean, or a lone window's score less
    ``lone_window_margin``, whichever is larger."""
    start: float
    """Stream time where the keyword itself begins (from the alignment)."""
    end: float
    """Stream time where the keyword itself ends."""
    detected_at: float
    """Stream time when the detection fired (audio captured by then)."""
    wall_time: float
    """Epoch seconds when the detection fired."""

    @property
    def latency(self) -> float:
        """Seconds from the end of the keyword to its detection."""
        return self.detected_at - self.end


@dataclass(frozen=True)
class WindowScore:
    """One keyword's score in one window, with its alignment in stream seconds."""

    keyword: str
    score: float
    start: float
    end: float


def as_if_live(window_end_s: float, compute_s: float) -> float:
    """When a detection on a window replayed as fast as possible (eval, bench, enrollment) would
    have fired had the audio come live and only the compute taken time: the window's end plus its
    compute."""
    return window_end_s + compute_s


class Detector:
    """Fed each window's scores in stream order; returns the detections they complete."""

    def __init__(self, thresholds: Mapping[str, float], settings: DetectorSettings = DetectorSettings()) -> None:
        """``thresholds``: read at every window, never copied, so that a change to the map (a
        KeywordSet's ``set_threshold``) takes effect at once."""
        self.thresholds = thresholds
        self.settings = settings
        self.reset()

    def reset(self) -> None:
        """Forget everything: no history, no refractory state."""
        self.new_span()
        self._last_end: dict[str, float] = {}

    def new_span(self) -> None:
        """A new speech span begins: windows of the previous one are not averaged with it."""
        self._history: dict[str, deque[float]] = {
            k: deque(maxlen=self.settings.smoothing_windows) for k in self.thresholds
        }

    def smoothed(self, score: WindowScore) -> float | None:
        """Take one keyword's score in the next window; the smoothed score that its threshold is
        compared with: the larger of the mean of the last ``smoothing_windows`` windows of the span
        (while the span has fewer, there is no mean) and the window's score less
        ``lone_window_margin``. None where the window cannot fire: no mean and no margin, or a zero
        score, which has no alignment to report."""
        history = self._history[score.keyword]
        history.append(score.score)
        if score.score <= 0.0:
            return None
        lone = score.score - self.settings.lone_window_margin
        if len(history) < history.maxlen:
            return None if math.isinf(lone) else lone
        return max(sum(history) / len(history), lone)

    def push(self, scores: Sequence[WindowScore], detected_at: float, wall_time: float) -> list[Detection]:
        detections = []
        for s in scores:
            smoothed = self.smoothed(s)
            if smoothed is None or smoothed < self.thresholds[s.keyword]:
                continue
            last_end = self._last_end.get(s.keyword)
            if last_end is not None and s.start < last_end + self.settings.refractory_s:
                continue
            self._last_end[s.keyword] = s.end
            detections.append(Detection(s.keyword, smoothed, s.start, s.end, detected_at, wall_time))
        return detections
