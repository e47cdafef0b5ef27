"""The speech embedding beside an encoder's frames (``kwstream.model.speech_embedding``), on the real ONNX models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.assets import DEMO_AUDIO
from kwstream.model.speech_embedding import DIMENSIONS, MIN_SAMPLES, SpeechEmbedding

SPF = 320  # the bundled model's samples per frame (20 ms)


@pytest.fixture(scope="module")
def embedding() -> SpeechEmbedding:
    return SpeechEmbedding()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return read_audio(DEMO_AUDIO)[: 4 * SAMPLE_RATE]


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_each_frame_gets_the_window_of_the_audio_up_to_its_end(embedding: SpeechEmbedding, speech: np.ndarray) -> None:
    """Row j embeds the 0.79 s that end with frame j (steps of 20 ms here, to hit each frame's end exactly), reaching
    back before the first frame; before sample 0 is silence."""
    read = lambda start, stop: speech[start:stop]  # noqa: E731
    first = SAMPLE_RATE
    rows = embedding.frames(read, first, 50, SPF, step_frames=2)
    assert rows.shape == (50, DIMENSIONS)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    for j in (0, 7, 49):
        end = first + (j + 1) * SPF
        alone, earlier = (unit(embedding.features(speech[e - MIN_SAMPLES:e], step_frames=2))[0] for e in (end, end - 2 * 160))
        # embedded alone, the mel's edges differ a little from the same window inside longer audio
        assert float(rows[j] @ alone) > 0.995 and float(rows[j] @ alone) > float(rows[j] @ earlier), j
    at_start = embedding.frames(read, 0, 10, SPF, step_frames=2)
    silence = math.ceil(MIN_SAMPLES / SPF) * SPF
    padded = np.concatenate([np.zeros(silence, np.float32), speech])
    np.testing.assert_allclose(at_start, embedding.frames(lambda a, b: padded[a:b], silence, 10, SPF, 2), atol=1e-6)


def test_overlapping_windows_of_a_stream_embed_each_step_once(embedding: SpeechEmbedding, speech: np.ndarray) -> None:
    """With ``known``, a window embeds only the steps no earlier window did (the pipeline's 1.5 s windows every
    0.25 s) and gives the rows that the window alone gives, up to the mel's level floor over other audio."""
    asked: list[tuple[int, int]] = []

    def read(start: int, stop: int) -> np.ndarray:
        asked.append((start, stop))
        return speech[start:stop]

    known: dict[int, np.ndarray] = {}
    for first in range(0, 2 * SAMPLE_RATE, SAMPLE_RATE // 4):
        rows = embedding.frames(read, first, 75, SPF, known=known)
        alone = embedding.frames(lambda a, b: speech[a:b], first, 75, SPF)
        assert float(np.min(np.sum(rows * alone, axis=1))) > 0.99, first
        assert min(known) >= (first + SPF) // 1280  # steps before the window are forgotten
    new_audio = [stop - start for start, stop in asked[1:]]
    assert max(new_audio) <= MIN_SAMPLES + SAMPLE_RATE // 4 + 1280  # the new quarter second and one window before it
    assert len(asked) == 8


def test_a_frames_row_needs_no_audio_after_the_frame(embedding: SpeechEmbedding, speech: np.ndarray) -> None:
    """As in a stream, where the newest frame has nothing after it: more audio after changes nothing before."""
    read = lambda start, stop: speech[start:stop]  # noqa: E731
    fewer, more = embedding.frames(read, SAMPLE_RATE, 60, SPF), embedding.frames(read, SAMPLE_RATE, 100, SPF)
    assert float(np.min(np.sum(fewer * more[:60], axis=1))) > 0.9999
    assert float(np.min(np.sum(more[80:] * more[59], axis=1))) < 0.99  # later rows do differ: speech goes on
