"""The one detector replay: what the live Detector does with recorded window scores.

A recording is scored once through the pipeline (``KeywordPipeline``); its ScoredWindows can then
be replayed through the same Detector at any threshold (eval's DET sweep), or asked which smoothed
scores the detector would compare with a threshold at all (enrollment's calibration), or, for
scores made elsewhere (a classifier's posteriors on clips), counted as detections.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kwstream.stream.detector import Detection, Detector, DetectorSettings, WindowScore, as_if_live
from kwstream.stream.events import ScoredWindow


def _window_scores(windows: Sequence[ScoredWindow], keyword: str, detector: Detector) -> Iterator[tuple[ScoredWindow, WindowScore]]:
    """Each window's score of ``keyword``, a new span of the detector where the VAD began one."""
    span = None
    for w in windows:
        if w.span != span:
            span = w.span
            detector.new_span()
        yield w, w.scores[keyword]


def replay(windows: Sequence[ScoredWindow], keyword: str, threshold: float, settings: DetectorSettings) -> list[Detection]:
    """What the live detector would have fired for ``keyword`` at ``threshold``."""
    detector = Detector({keyword: threshold}, settings)
    detections: list[Detection] = []
    for w, score in _window_scores(windows, keyword, detector):
        detections += detector.push([score], detected_at=as_if_live(w.end_s, w.compute_s), wall_time=0.0)
    return detections


def compared_scores(windows: Sequence[ScoredWindow], keyword: str, settings: DetectorSettings) -> list[float]:
    """Every smoothed score of ``keyword`` that the live detector compares with its threshold:
    the keyword fires on these windows at a threshold if and only if one of them reaches it."""
    detector = Detector({keyword: 1.0}, settings)
    return [s for _, score in _window_scores(windows, keyword, detector) if (s := detector.smoothed(score)) is not None]
