"""Detector: smoothing over a span's windows, a lone window at a higher bar, per-keyword
thresholds, refractory period."""

from __future__ import annotations

import math

import pytest

from kwstream.stream.detector import Detection, Detector, DetectorSettings, WindowScore


def window(detector: Detector, keyword: str, score: float, start: float = 1.0, end: float = 1.5, at: float = 2.0):
    """Push one window holding one keyword's score; returns the detections."""
    return detector.push([WindowScore(keyword, score, start, end)], detected_at=at, wall_time=1000.0 + at)


def detector(smoothing: int = 2, threshold: float = 0.5, refractory: float = 0.25, keywords=("stop",),
             margin: float = math.inf) -> Detector:
    """Without a margin unless asked: the smoothing alone."""
    settings = DetectorSettings(smoothing_windows=smoothing, refractory_s=refractory, lone_window_margin=margin)
    return Detector({k: threshold for k in keywords}, settings)


def fire_once(d: Detector) -> None:
    """Two high windows of one occurrence (1.0-1.5 s): exactly one detection between them."""
    fired = window(d, "stop", 0.9) + window(d, "stop", 0.9)
    assert [(f.start, f.end) for f in fired] == [(1.0, 1.5)]


def test_single_spike_mid_span_does_not_fire():
    d = detector(smoothing=2)
    assert window(d, "stop", 0.05) == []
    assert window(d, "stop", 0.9) == []  # mean(0.05, 0.9) = 0.475 < 0.5
    assert window(d, "stop", 0.05) == []  # mean(0.9, 0.05)


def test_single_spike_in_first_window_of_span_does_not_fire():
    """The module promises "a single-window spike does not fire"; the first window of a span
    (or after new_span/reset) has no earlier window to average with."""
    d = detector(smoothing=2)
    assert window(d, "stop", 0.9) == []
    assert window(d, "stop", 0.05) == []


def test_two_consecutive_high_windows_fire_with_their_mean():
    d = detector(smoothing=2)
    window(d, "stop", 0.05)
    assert window(d, "stop", 0.8) == []  # 0.425
    fired = window(d, "stop", 0.6, start=1.25, end=1.75, at=2.5)
    assert len(fired) == 1
    assert fired[0].keyword == "stop"
    assert fired[0].score == pytest.approx(0.7)  # mean(0.8, 0.6), the smoothed score
    assert (fired[0].start, fired[0].end, fired[0].detected_at) == (1.25, 1.75, 2.5)
    assert fired[0].wall_time == 1002.5


def test_smoothing_averages_only_the_last_n_windows():
    d = detector(smoothing=3)
    for s in (0.0, 0.0, 0.9, 0.3):
        assert window(d, "stop", s) == []  # last: mean(0.0, 0.9, 0.3) = 0.4
    fired = window(d, "stop", 0.6)  # mean(0.9, 0.3, 0.6) = 0.6
    assert [f.score for f in fired] == [pytest.approx(0.6)]


def test_lone_window_at_threshold_plus_margin_fires_at_once():
    """The keyword's first complete window after a window that held part of it: the mean is low,
    the window alone clears the higher bar, and fires with its score less the margin."""
    d = detector(margin=0.2)
    assert window(d, "stop", 0.1) == []
    fired = window(d, "stop", 0.75, start=1.25, end=1.75, at=2.5)  # mean 0.425, alone 0.55
    assert [(f.score, f.start, f.end, f.detected_at) for f in fired] == [(pytest.approx(0.55), 1.25, 1.75, 2.5)]


def test_lone_window_below_threshold_plus_margin_waits_for_the_mean():
    d = detector(margin=0.2, refractory=0.0)
    assert window(d, "stop", 0.1) == []
    assert window(d, "stop", 0.69) == []  # mean 0.395, alone 0.49
    assert [f.score for f in window(d, "stop", 0.69)] == [pytest.approx(0.69)]  # the mean is the larger


def test_lone_window_fires_in_the_first_window_of_a_span():
    d = detector(margin=0.2)
    assert window(d, "stop", 0.69) == []
    d.new_span()
    assert [f.score for f in window(d, "stop", 0.75)] == [pytest.approx(0.55)]


def test_zero_margin_fires_on_every_window_that_reaches_the_threshold():
    d = detector(margin=0.0, refractory=0.0)
    assert window(d, "stop", 0.1) == []
    assert [f.score for f in window(d, "stop", 0.5)] == [0.5]


def test_smoothing_one_fires_on_a_single_window():
    d = detector(smoothing=1)
    assert [f.score for f in window(d, "stop", 0.51)] == [0.51]


def test_score_equal_to_threshold_fires():
    d = detector(smoothing=1, threshold=0.5)
    assert len(window(d, "stop", 0.5)) == 1


def test_zero_score_never_fires_even_at_threshold_zero():
    d = detector(smoothing=1, threshold=0.0)
    assert window(d, "stop", 0.0) == []


def test_each_keyword_uses_its_own_threshold_and_history():
    settings = DetectorSettings(smoothing_windows=1, refractory_s=0.25)
    d = Detector({"stop": 0.3, "go": 0.8}, settings)
    fired = d.push(
        [WindowScore("stop", 0.4, 1.0, 1.5), WindowScore("go", 0.7, 1.0, 1.5)], detected_at=2.0, wall_time=0.0
    )
    assert [f.keyword for f in fired] == ["stop"]
    fired = d.push(
        [WindowScore("stop", 0.1, 3.0, 3.5), WindowScore("go", 0.85, 3.0, 3.5)], detected_at=4.0, wall_time=0.0
    )
    assert [f.keyword for f in fired] == ["go"]


def test_keywords_are_smoothed_independently():
    settings = DetectorSettings(smoothing_windows=2, refractory_s=0.0, lone_window_margin=math.inf)
    d = Detector({"stop": 0.5, "go": 0.5}, settings)
    fired = d.push([WindowScore("stop", 0.9, 1.0, 1.5), WindowScore("go", 0.0, 0.0, 0.0)], 2.0, 0.0)
    fired += d.push([WindowScore("stop", 0.9, 1.0, 1.5), WindowScore("go", 0.9, 1.0, 1.5)], 2.25, 0.0)
    assert [f.keyword for f in fired] == ["stop"]  # go: mean(0.0, 0.9) = 0.45


def test_same_occurrence_in_overlapping_windows_fires_once():
    d = detector(smoothing=1, refractory=0.25)
    fired = []
    for k, (start, end) in enumerate([(1.0, 1.5), (1.0, 1.5), (1.02, 1.52), (0.98, 1.5), (1.0, 1.48)]):
        fired += window(d, "stop", 0.9, start, end, at=2.0 + 0.25 * k)
    assert len(fired) == 1


def test_occurrence_starting_after_end_plus_refractory_fires_again():
    d = detector(smoothing=1, refractory=0.25)
    assert len(window(d, "stop", 0.9, 1.0, 1.5)) == 1
    assert len(window(d, "stop", 0.9, 1.75, 2.25, at=2.5)) == 1  # exactly end + refractory
    assert len(window(d, "stop", 0.9, 3.0, 3.5, at=4.0)) == 1


def test_occurrence_starting_within_refractory_does_not_fire():
    d = detector(smoothing=1, refractory=0.25)
    assert len(window(d, "stop", 0.9, 1.0, 1.5)) == 1
    assert window(d, "stop", 0.9, 1.625, 2.0, at=2.5) == []  # 1.625 < 1.5 + 0.25


def test_refractory_is_per_keyword():
    settings = DetectorSettings(smoothing_windows=1, refractory_s=0.25)
    d = Detector({"stop": 0.5, "go": 0.5}, settings)
    assert len(d.push([WindowScore("stop", 0.9, 1.0, 1.5)], 2.0, 0.0)) == 1
    assert [f.keyword for f in d.push([WindowScore("go", 0.9, 1.5, 1.75)], 2.0, 0.0)] == ["go"]


def test_new_span_clears_smoothing_history():
    d = detector(smoothing=2)
    fire_once(d)  # ends at 1.5
    d.new_span()
    # Without the old 0.9s, the mean is 0.3: no detection (with them it would be 0.6).
    assert window(d, "stop", 0.3, 10.0, 10.5, at=11.0) == []


def test_new_span_keeps_refractory():
    d = detector(smoothing=2, refractory=0.25)
    fire_once(d)  # ends at 1.5
    d.new_span()
    assert window(d, "stop", 0.9, 1.5, 2.0, at=2.5) == []
    assert window(d, "stop", 0.9, 1.5, 2.0, at=2.75) == []  # still within 1.5 + 0.25


def test_reset_clears_history_and_refractory():
    d = detector(smoothing=2, refractory=0.25)
    fire_once(d)  # ends at 1.5
    d.reset()
    assert window(d, "stop", 0.3, 1.5, 2.0) == []  # no old 0.9 in the mean
    assert len(window(d, "stop", 0.9, 1.5, 2.0)) == 1  # mean 0.6; refractory forgotten


def test_detection_latency_is_detection_time_minus_keyword_end():
    detection = Detection("stop", 0.9, start=1.0, end=1.5, detected_at=2.25, wall_time=123.0)
    assert detection.latency == 0.75
    d = detector(smoothing=1)
    assert window(d, "stop", 0.9, 1.0, 1.5, at=1.875)[0].latency == 0.375


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(smoothing_windows=0),
        dict(smoothing_windows=-1),
        dict(refractory_s=-0.1),
        dict(lone_window_margin=-0.01),
        dict(lone_window_margin=math.nan),
    ],
)
def test_invalid_settings_raise(kwargs):
    with pytest.raises(ValueError):
        DetectorSettings(**kwargs)


def test_boundary_settings_are_valid_and_do_what_they_say():
    """Threshold 0, no smoothing, no refractory: every scored window fires, the next occurrence
    even when it starts where the last one ended. Threshold 1: only perfect scores fire."""
    d = detector(smoothing=1, threshold=0.0, refractory=0.0)
    assert [f.score for f in window(d, "stop", 0.01, start=1.0, end=1.5)] == [0.01]
    assert [(f.start, f.end) for f in window(d, "stop", 0.01, start=1.5, end=2.0)] == [(1.5, 2.0)]
    top = detector(threshold=1.0)  # no margin
    assert window(top, "stop", 1.0) == [] and window(top, "stop", 0.999) == []  # mean 0.9995
    assert window(top, "stop", 1.0, start=3.0, end=3.5) == []  # mean(0.999, 1.0)
    assert [f.score for f in window(top, "stop", 1.0, start=3.0, end=3.5)] == [1.0]
