"""Detections on the demo and on a development-like stream stay what they were before a refactor.

tests/reference_detections.json was written by this file's ``__main__`` on the code before the
one-direction refactor (issue 33); every later change that means to leave behaviour alone must
leave it true. The demo runs through the pipeline and through the Spotter (its own ring in front);
the bench's stream of real recorded digits stands in for the development streams (not in the repo).
When a change is meant to alter detections, rewrite the file (``python tests/test_reference_detections.py``)
and say why in the commit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from kwstream.assets import DEMO_AUDIO
from kwstream.audio.io import read_audio
from kwstream.audio.sources import AudioFile
from kwstream.evaluation.bench import WORDS, speech_stream
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.model.resolve import BUNDLED_MODEL_DIR
from kwstream.spotter import Spotter, SpotterSettings
from kwstream.stream.detector import Detection
from kwstream.stream.events import ScoredWindow
from kwstream.stream.pipeline import KeywordPipeline

REFERENCE = Path(__file__).with_name("reference_detections.json")
DEMO_KEYWORDS = ["hey", "stop"]
DIGITS_S = 40.0
PUSH_SAMPLES = 1234
"""Pushed in chunks that line up with nothing (not the VAD's frames, the hop or the pipeline's blocks)."""

pytestmark = pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="needs the bundled model")


def described(events: list) -> dict:
    """What a run says, less when each detection fired (that includes the measured compute time)."""
    return {
        "detections": [[d.keyword, round(d.start, 4), round(d.end, 4), round(d.score, 4)]
                       for d in events if isinstance(d, Detection)],
        "windows": sum(isinstance(e, ScoredWindow) for e in events),
    }


def pushed(encoder: Encoder, keywords: list[str], audio: np.ndarray) -> dict:
    pipeline = KeywordPipeline(KeywordSet(encoder, keywords), encoder, SpotterSettings())
    events = []
    for start in range(0, len(audio), PUSH_SAMPLES):
        events += pipeline.push(audio[start:start + PUSH_SAMPLES])
    return described(events + pipeline.flush())


def spotted(encoder: Encoder, keywords: list[str]) -> dict:
    events: list = []
    with Spotter(keywords, encoder=encoder, source=AudioFile(DEMO_AUDIO, realtime=False), on_event=events.append) as spotter:
        spotter.wait()
    return described(events)


def current() -> dict:
    encoder = Encoder(EncoderSettings(model=str(BUNDLED_MODEL_DIR), threads=1))
    digits, _ = speech_stream(DIGITS_S)
    return {
        "demo pipeline": pushed(encoder, DEMO_KEYWORDS, read_audio(DEMO_AUDIO)),
        "demo spotter": spotted(encoder, DEMO_KEYWORDS),
        "digits pipeline": pushed(encoder, sorted(WORDS.values()), digits),
    }


def test_detections_are_the_reference_ones():
    reference = json.loads(REFERENCE.read_text())
    now = current()
    assert now["demo pipeline"]["detections"], "the demo must detect something for the comparison to mean anything"
    assert now == reference


if __name__ == "__main__":
    text = json.dumps(current(), indent=1)
    REFERENCE.write_text(re.sub(r"\[\s+([^][]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m[1]) + "]", text) + "\n")
