"""Per-model default thresholds by keyword and by length: fitting, lookup, and who wins over whom."""

from __future__ import annotations

import json
import shutil

import pytest

from kwstream import Encoder, EncoderSettings, Keyword, KeywordSettings, Spotter, SpotterSettings
from kwstream.keywords.keyword_set import (
    CALIBRATION_FILE, FALLBACK_THRESHOLD, UNREACHABLE_THRESHOLD, Calibration, fit_calibration, load_calibration,
)


def test_fit_takes_the_median_per_length_and_marks_unreachable_lengths():
    c = fit_calibration({"one": 0.9, "two": 0.8, "six": 0.7, "stop": 0.6, "lights": None}, 0.5, "test")
    assert c.thresholds_by_letters == {3: 0.8, 4: 0.6, 6: UNREACHABLE_THRESHOLD}
    assert c.target_false_alarms_per_hour == 0.5


def test_a_measured_keyword_keeps_its_own_threshold_and_others_take_their_lengths():
    c = fit_calibration({"one": 0.9, "two": 0.8, "six": 0.7, "Hey  Computer": 0.33, "lights": None}, 0.5, "test")
    assert c.threshold_for("six") == 0.7 and c.threshold_for("ONE") == 0.9  # not the 3-letter median 0.8
    assert c.threshold_for("hey computer") == 0.33 and c.threshold_for("lights") == UNREACHABLE_THRESHOLD
    assert c.threshold_for("ten") == 0.8 and c.threshold_for("stop") == 0.8  # unmeasured: the nearest length


def test_a_calibration_written_before_per_keyword_thresholds_still_loads(tmp_path):
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"thresholds_by_letters": {"3": 0.7}, "target_false_alarms_per_hour": 5}))
    assert load_calibration(tmp_path) == Calibration({3: 0.7}, 5.0, "")


def test_lookup_uses_the_nearest_measured_length():
    c = Calibration({3: 0.8, 5: 0.6, 8: 0.4}, 0.5, "test")
    assert c.threshold_for("hey") == 0.8
    assert c.threshold_for("stop") == 0.6  # 4 letters: 3 and 5 are as near; the longer wins
    assert c.threshold_for("hey computer") == 0.4  # 11 letters, the space not counted
    assert c.threshold_for("go") == 0.8


def test_save_and_load_round_trip(tmp_path):
    c = Calibration({3: 0.8, 6: 0.55}, 0.5, "streams", {"hey": 0.41})
    c.save(tmp_path / CALIBRATION_FILE)
    assert load_calibration(tmp_path) == c
    assert load_calibration(tmp_path / "elsewhere") is None


def test_spotter_thresholds_keyword_then_global_then_model_then_fallback(tiny_model, tmp_path):
    plain = Encoder(EncoderSettings(model=str(tiny_model)))
    assert Spotter(["stop"], encoder=plain).thresholds == {"stop": FALLBACK_THRESHOLD}
    calibrated_dir = shutil.copytree(tiny_model, tmp_path / "calibrated")
    Calibration({3: 0.8, 4: 0.7}, 0.5, "test").save(calibrated_dir / CALIBRATION_FILE)
    calibrated = Encoder(EncoderSettings(model=str(calibrated_dir)))
    assert Spotter(["hey", "stop"], encoder=calibrated).thresholds == {"hey": 0.8, "stop": 0.7}
    everyone = SpotterSettings(keywords=KeywordSettings(threshold=0.3))
    spotter = Spotter([Keyword("hey"), Keyword("stop", 0.9)], encoder=calibrated, settings=everyone)
    assert spotter.thresholds == {"hey": 0.3, "stop": 0.9}


@pytest.mark.parametrize("threshold", [-0.01, 1.01, 1.5, float("nan")])
def test_invalid_global_threshold_is_refused(threshold):
    with pytest.raises(ValueError):
        KeywordSettings(threshold=threshold)


def test_threshold_priority_own_then_everyone_then_measured_then_calibrated():
    from kwstream.keywords.keyword_set import Calibration
    from kwstream.keywords.keyword_set import keyword_thresholds

    class Enrolled:  # what an enrolled-keyword scorer reports: thresholds measured at enrollment
        keywords = ["wake", "sleep"]
        thresholds = {"wake": 0.3, "sleep": 0.4}

    calibration = Calibration({4: 0.7}, 0.5, "test")
    typed = [Keyword("hey"), Keyword("stop", 0.8)]
    assert keyword_thresholds(typed, [Enrolled()], {"sleep": 0.9}, None, calibration) == {
        "hey": 0.7, "stop": 0.8, "wake": 0.3, "sleep": 0.9}
    assert keyword_thresholds(typed, [Enrolled()], {"sleep": 0.9}, 0.6, calibration) == {
        "hey": 0.6, "stop": 0.8, "wake": 0.6, "sleep": 0.9}
