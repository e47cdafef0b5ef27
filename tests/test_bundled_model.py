"""The bundled model in the real pipeline, at its calibrated default thresholds
(kwstream/assets/model/kwstream.json): keywords found at the right time, and keyword-free speech (with near
misses such as "stopped" and "lighter") passing with no more false alarms than the model's measured
rate allows. The bars come from the development streams' figures (model card), not from this audio.

The speech is synthesised here, in voices and at speaking rates the model never trained on
(training/kws_streams.py), with a fixed seed: espeak-ng and flite ("synthetic") and Kokoro blends
holding its held-out style ("natural", the voices the model is judged on). The bars below are the
model card's measured figures with a margin, not tuned to this draw.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import soundfile

from kwstream import AudioFile, Spotter
from kwstream.keywords.keyword_set import model_calibration
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.model.resolve import BUNDLED_MODEL_DIR
from training.kws_streams import VOICE_SETS, _streams, _voice, negative, positive
from training.texts import PromptGenerator

pytestmark = [
    pytest.mark.slow,  # synthesises speech (Kokoro too) and runs the real model over it
    pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="no bundled model in kwstream/assets/model"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None, reason="needs espeak-ng and flite"),
]
VOICE_SET_NAMES = ("synthetic", "natural")

PER_KEYWORD = 4
TIME_TOLERANCE_S = 0.3
DEV_RECALL = {
    "synthetic": {"stop": 0.36, "computer": 0.56, "lights": 0.76, "seven": 0.40},
    "natural": {"stop": 0.55, "computer": 0.95, "zero": 0.85, "seven": 0.70},
}
"""Recall of each keyword at the default (calibrated) thresholds on the development streams of each
voice set (synthetic: seed 11, natural: seed 13; see the model card); this test's audio is another draw.
The natural set's keywords are four of those its defaults find more than half the time."""
DEV_FALSE_ALARMS_PER_HOUR = {
    "synthetic": {"stop": 3.8, "computer": 3.0, "lights": 9.1, "seven": 4.6},
    "natural": {"stop": 8.1, "computer": 7.1, "zero": 8.1, "seven": 8.1},
}
"""False alarms per hour of keyword-free speech at the default thresholds, same development streams."""
SURPRISE = 0.01
"""A test fails when the model does worse than the development figures make this unlikely."""


def binomial_floor(n: int, p: float, tail: float) -> int:
    """Largest k with P(X < k) <= tail for X ~ Binomial(n, p): fewer hits than k is a surprise."""
    cumulative, k = 0.0, 0
    while k <= n and cumulative + math.comb(n, k) * p**k * (1 - p) ** (n - k) <= tail:
        cumulative += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        k += 1
    return k


def poisson_ceiling(mean: float, tail: float) -> int:
    """Smallest k with P(X > k) <= tail for X ~ Poisson(mean): more than k is a surprise."""
    k, cumulative = 0, math.exp(-mean)
    while 1 - cumulative > tail:
        k += 1
        cumulative += math.exp(-mean) * mean**k / math.factorial(k)
    return k


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(EncoderSettings(model=str(BUNDLED_MODEL_DIR)))


def run(encoder: Encoder, keywords, pieces, tmp_path, name: str) -> list[tuple[list, list]]:
    """Each stream's (detections, labels), the streams cut from ``pieces`` as the eval streams are."""
    results = []
    for stream in _streams(pieces, name, np.random.default_rng(5)):
        path = tmp_path / f"{stream.name}.wav"
        soundfile.write(path, stream.audio, 16000)
        spotter = Spotter(list(keywords), source=AudioFile(path, realtime=False), encoder=encoder)
        with spotter:
            results.append((list(spotter.detections()), stream.labels))
    return results


@pytest.mark.parametrize("voice_set", VOICE_SET_NAMES)
def test_keywords_are_found_where_they_were_said(encoder, tmp_path, voice_set):
    keywords = tuple(DEV_RECALL[voice_set])
    rng = np.random.default_rng(2024)
    prompts = PromptGenerator(rng)
    pieces = [positive(keyword, prompts, _voice(rng, VOICE_SETS[voice_set]), rng) for keyword in keywords * PER_KEYWORD]
    found = [
        (label, any(d.keyword == label[0] and abs(d.start - label[1]) <= TIME_TOLERANCE_S
                    and abs(d.end - label[2]) <= TIME_TOLERANCE_S for d in detections))
        for detections, labels in run(encoder, keywords, pieces, tmp_path, "keywords")
        for label in labels
    ]
    assert len(found) == len(keywords) * PER_KEYWORD
    floor = binomial_floor(len(found), np.mean([DEV_RECALL[voice_set][k] for k in keywords]), SURPRISE)
    assert floor > 0, "a bar of no hits would test nothing"
    assert sum(hit for _, hit in found) >= floor, found


NEGATIVE_S = 45.0


@pytest.mark.parametrize("voice_set", VOICE_SET_NAMES)
def test_keyword_free_speech_fires_nothing_at_the_default_thresholds(encoder, tmp_path, voice_set):
    assert model_calibration(encoder) is not None, "the bundled model ships calibrated thresholds"
    rng = np.random.default_rng(77)
    prompts = PromptGenerator(rng)
    pieces, total_s = [], 0.0
    while total_s < NEGATIVE_S:
        pieces.append(negative(prompts, _voice(rng, VOICE_SETS[voice_set]), rng))
        total_s += len(pieces[-1].audio) / 16000
    detections = [d for found, _ in run(encoder, DEV_RECALL[voice_set], pieces, tmp_path, "free") for d in found]
    # The goal is none at all; at the measured rates (up to 9 per hour for "lights" in synthetic voices)
    # an occasional one is what this model does, so the test fails when there are more than those
    # rates make plausible.
    expected = sum(DEV_FALSE_ALARMS_PER_HOUR[voice_set].values()) * total_s / 3600
    assert len(detections) <= poisson_ceiling(expected, SURPRISE), detections
