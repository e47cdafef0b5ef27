"""The speech embedding beside an encoder's frames (``kwstream.model.speech_embedding``), on the real ONNX models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.assets import DEMO_AUDIO
from kwstream.model.speech_embedding import DIMENSIONS, MEL_HOP, MIN_SAMPLES, STEP_FRAMES, SpeechEmbedding

SPF = 320  # the bundled model's samples per frame (20 ms)
STEP_SAMPLES = STEP_FRAMES * MEL_HOP  # 80 ms


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


def test_at_the_default_step_each_row_is_the_window_ending_at_the_last_boundary_by_its_frame(embedding: SpeechEmbedding,
                                                                                          speech: np.ndarray) -> None:
    """Boundaries every 80 ms (1,280 samples) from sample 0; a frame that ends between two takes the earlier, and
    nothing after the last frame's end is read."""
    first, count = SAMPLE_RATE + 3 * SPF, 30  # not on the grid

    def read(start: int, stop: int) -> np.ndarray:
        assert stop <= first + count * SPF, (start, stop)
        return speech[start:stop]

    rows = embedding.frames(read, first, count, SPF)
    for j in (0, 1, 2, 3, 4, 17, 29):
        end = (first + (j + 1) * SPF) // STEP_SAMPLES * STEP_SAMPLES
        alone = unit(embedding.features(speech[end - MIN_SAMPLES:end]))[0]
        later = unit(embedding.features(speech[end + STEP_SAMPLES - MIN_SAMPLES:end + STEP_SAMPLES]))[0]
        assert float(rows[j] @ alone) > 0.995 and float(rows[j] @ alone) > float(rows[j] @ later), j


def test_overlapping_windows_of_a_stream_embed_each_step_once(embedding: SpeechEmbedding, speech: np.ndarray,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``known``, a window embeds only the steps no earlier window did (the pipeline's 1.5 s windows every
    0.25 s) and gives the rows that the window alone gives, up to the mel's level floor over other audio."""
    read = lambda start, stop: speech[start:stop]  # noqa: E731
    embedded: list[int] = []
    features = embedding.features

    def counted(audio: np.ndarray, step_frames: int = STEP_FRAMES) -> np.ndarray:
        rows = features(audio, step_frames)
        embedded.append(len(rows))
        return rows

    known: dict[int, np.ndarray] = {}
    boundaries: set[int] = set()
    for first in range(0, 2 * SAMPLE_RATE, SAMPLE_RATE // 4):
        with monkeypatch.context() as patch:
            patch.setattr(embedding, "features", counted)
            rows = embedding.frames(read, first, 75, SPF, known=known)
        alone = embedding.frames(read, first, 75, SPF)
        assert float(np.min(np.sum(rows * alone, axis=1))) > 0.99, first
        boundaries |= set(range((first + SPF) // STEP_SAMPLES, (first + 75 * SPF) // STEP_SAMPLES + 1))
        assert min(known) >= (first + SPF) // STEP_SAMPLES  # steps before the window are forgotten
    assert sum(embedded) == len(boundaries) and len(embedded) == 8  # every boundary embedded once, none twice


def test_a_frames_row_needs_no_audio_after_the_frame(embedding: SpeechEmbedding, speech: np.ndarray) -> None:
    """As in a stream, where the newest frame has nothing after it: more audio after changes nothing before."""
    read = lambda start, stop: speech[start:stop]  # noqa: E731
    fewer, more = embedding.frames(read, SAMPLE_RATE, 60, SPF), embedding.frames(read, SAMPLE_RATE, 100, SPF)
    assert float(np.min(np.sum(fewer * more[:60], axis=1))) > 0.9999
    assert float(np.min(np.sum(more[80:] * more[59], axis=1))) < 0.99  # later rows do differ: speech goes on
