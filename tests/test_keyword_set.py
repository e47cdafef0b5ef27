"""KeywordSet: the one owner of keyword names, scorers, layers, warnings and thresholds."""

from __future__ import annotations

import json

import pytest

from kwstream.errors import KeywordError, ModelLoadError
from kwstream.keywords.homophones import homophone_warning
from kwstream.keywords.keyword_set import CALIBRATION_FILE, FALLBACK_THRESHOLD, Keyword, KeywordSet, KeywordSettings, parse_keywords
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.stream.detector import Detector


@pytest.fixture(scope="module")
def encoder(tiny_model) -> Encoder:
    return Encoder(EncoderSettings(model=str(tiny_model), backend="torch"))


class Measured:
    """What an enrolled-keyword scorer reports: its keywords, layers and thresholds measured at enrollment."""

    keywords = ["wake"]
    layers = (1,)
    thresholds = {"wake": 0.3}


def test_names_scorers_layers_and_one_threshold_map(encoder):
    keywords = KeywordSet(encoder, ["hey", "stop:0.8"], [Measured()], thresholds={"wake": 0.6})
    assert keywords.names == ["hey", "stop", "wake"] and keywords.layers == (1,)
    assert keywords.thresholds == {"hey": FALLBACK_THRESHOLD, "stop": 0.8, "wake": 0.6}
    assert keywords.typed == [Keyword("hey"), Keyword("stop", 0.8)] == parse_keywords("hey, stop:0.8")
    detector = Detector(keywords.thresholds)
    keywords.set_threshold("hey", 0.9)
    assert detector.thresholds["hey"] == 0.9  # the detector reads the same map
    with pytest.raises(KeywordError):
        keywords.set_threshold("nope", 0.5)


def test_the_models_calibration_and_the_threshold_for_every_keyword(encoder, tiny_model, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for f in tiny_model.iterdir():
        (model / f.name).symlink_to(f)
    (model / CALIBRATION_FILE).write_text(json.dumps({"thresholds_by_letters": {"3": 0.7, "4": 0.6},
                                                      "target_false_alarms_per_hour": 0.5}))
    calibrated = Encoder(EncoderSettings(model=str(model), backend="torch"))
    assert KeywordSet(calibrated, ["hey", "stop", "computer"]).thresholds == {"hey": 0.7, "stop": 0.6, "computer": 0.6}
    assert KeywordSet(calibrated, ["hey", "stop:0.9"], settings=KeywordSettings(threshold=0.4)).thresholds == {"hey": 0.4, "stop": 0.9}


def test_homophone_warnings_are_data(encoder, caplog):
    keywords = KeywordSet(encoder, ["four", "stop"])
    assert keywords.homophone_warnings == [homophone_warning("four")]
    assert not caplog.records  # nothing printed or logged: the CLI shows them


def test_mistakes_are_refused(encoder, tmp_path):
    with pytest.raises(KeywordError, match="no keywords"):
        KeywordSet(encoder)
    with pytest.raises(KeywordError, match="duplicate"):
        KeywordSet(encoder, ["stop", "STOP"])

    class TooDeep(Measured):
        layers = (99,)

    with pytest.raises(ModelLoadError, match="layers 0-"):
        KeywordSet(encoder, scorers=[TooDeep()])
