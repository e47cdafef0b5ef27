"""The bundled model in the real pipeline: keywords found at the right time, and keyword-free
speech (with near misses such as "stopped" and "lighter") passing without a detection at the
model's calibrated default thresholds (assets/model/kwstream.json).

The speech is synthesised here, in voices and at speaking rates the model never trained on
(kwstream/training/kws_streams.py), with a fixed seed. The bars below are the model card's
measured figures with a margin, not tuned to this draw.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile

from kwstream import AudioFile, Spotter
from kwstream.encoder import BUNDLED_MODEL_DIR, Encoder, EncoderSettings
from kwstream.training.kws_streams import _streams, _voice, negative, positive
from kwstream.training.texts import PromptGenerator

pytestmark = [
    pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="no bundled model in assets/model"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None, reason="needs espeak-ng and flite"),
]

KEYWORDS = ("stop", "computer", "lights", "seven")
PER_KEYWORD = 3
TIME_TOLERANCE_S = 0.3
MIN_FOUND = 0.75
"""Share of keywords that must be found at the right time (see the model card's recall)."""


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(EncoderSettings(model=str(BUNDLED_MODEL_DIR)))


def run(encoder: Encoder, pieces, tmp_path, name: str) -> list[tuple[list, list]]:
    """Each stream's (detections, labels), the streams cut from ``pieces`` as the eval streams are."""
    results = []
    for stream, audio, labels in _streams(pieces, name, np.random.default_rng(5)):
        path = tmp_path / f"{stream}.wav"
        soundfile.write(path, audio, 16000)
        spotter = Spotter(list(KEYWORDS), source=AudioFile(path, realtime=False), encoder=encoder)
        with spotter:
            results.append((list(spotter.detections()), labels))
    return results


def test_keywords_are_found_where_they_were_said(encoder, tmp_path):
    rng = np.random.default_rng(2024)
    prompts = PromptGenerator(rng)
    pieces = []
    for keyword in KEYWORDS * PER_KEYWORD:
        audio, start, end = positive(keyword, prompts, _voice(rng), rng)
        pieces.append((audio, [(keyword, start, end)]))
    found = [
        (label, any(d.keyword == label[0] and abs(d.start - label[1]) <= TIME_TOLERANCE_S
                    and abs(d.end - label[2]) <= TIME_TOLERANCE_S for d in detections))
        for detections, labels in run(encoder, pieces, tmp_path, "keywords")
        for label in labels
    ]
    assert len(found) == len(KEYWORDS) * PER_KEYWORD
    assert np.mean([hit for _, hit in found]) >= MIN_FOUND, found


NEGATIVE_S = 45.0


def test_keyword_free_speech_fires_nothing_at_the_default_thresholds(encoder, tmp_path):
    assert encoder.calibration is not None, "the bundled model ships calibrated thresholds"
    rng = np.random.default_rng(77)
    prompts = PromptGenerator(rng)
    pieces, total_s = [], 0.0
    while total_s < NEGATIVE_S:
        audio = negative(prompts, _voice(rng), rng)
        pieces.append((audio, []))
        total_s += len(audio) / 16000
    detections = [d for found, _ in run(encoder, pieces, tmp_path, "free") for d in found]
    assert detections == []
