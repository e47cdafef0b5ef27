"""The chunked encoder: frames line up with the span, and each sample is encoded about once."""

from __future__ import annotations

import numpy as np
import pytest

from kwstream.chunked import ChunkedEncoder
from kwstream.encoder import Encoder, EncoderSettings

SPF = 320


@pytest.fixture(scope="module")
def encoder(tiny_model) -> Encoder:
    return Encoder(EncoderSettings(model=str(tiny_model)))


@pytest.fixture(scope="module")
def span() -> np.ndarray:
    return np.random.default_rng(3).normal(0, 0.1, 16000 * 4).astype(np.float32)


def steps(chunker: ChunkedEncoder, audio: np.ndarray, span_start: int, hop: int, window: int):
    """Drive the chunker as the spotter does: a window ends every hop; yields (window, first, frames)."""
    chunker.start_span(span_start)
    read = lambda a, b: audio[a - span_start:b - span_start]  # noqa: E731
    for stop in range(span_start + hop, span_start + len(audio) + 1, hop):
        start = max(span_start, stop - window)
        yield (start, stop), *chunker.frames(read, start, stop)


def test_with_unlimited_context_every_window_is_the_full_encoding_of_its_span(encoder, span):
    # Context longer than the span: each step re-encodes the whole span so far, so the frames of a
    # window must be exactly the frames of one pass over the span, sliced at the window's start.
    chunker = ChunkedEncoder(encoder, (1,), 10 * 16000, 10 * 16000, 24000)
    for (start, stop), first, frames in steps(chunker, span, 5000, 4000, 24000):
        full = encoder.encode(span[: stop - 5000], (1,))
        skip = -(-(start - 5000) // SPF)
        assert first == 5000 + skip * SPF >= start
        np.testing.assert_allclose(frames.log_probs, full.log_probs[skip:], atol=1e-5)
        np.testing.assert_allclose(frames.features[1], full.features[1][skip:], atol=1e-5)


def test_frames_cover_each_window_from_its_start_with_short_context(encoder, span):
    chunker = ChunkedEncoder(encoder, (), 8000, 4000, 24000)
    for (start, stop), first, frames in steps(chunker, span, 0, 4000, 24000):
        assert first == -(-start // SPF) * SPF
        assert len(frames) == encoder.frames_for(stop) - first // SPF
        assert np.isfinite(frames.log_probs).all()


def test_final_frames_come_from_a_chunk_with_their_left_and_right_context(encoder, span):
    # A frame that became final was computed from audio that reaches right_context past it; that
    # chunk's encoding of the frame is what later windows see.
    left, right, hop = 8000, 4000, 4000
    chunker = ChunkedEncoder(encoder, (), left, right, 24000)
    results = {stop: (first, frames) for (_, stop), first, frames in steps(chunker, span, 0, hop, 24000)}
    first, frames = results[32000]  # the window [0.5 s, 2 s)
    frame = 60  # 1.2 s in: final since the step that ended at 1.5 s
    chunk_start = None
    for s in range(hop, len(span) + 1, hop):  # the step at which frame 60 became final
        if encoder.frames_for(s - right) > frame:
            chunk_start = max(0, encoder.frames_for(s - hop - right) - left // SPF) * SPF
            expected = encoder.encode(span[chunk_start:s]).log_probs[frame - chunk_start // SPF]
            break
    np.testing.assert_allclose(frames.log_probs[frame - first // SPF], expected, atol=1e-5)


def test_each_sample_is_encoded_about_once_plus_context(encoder, span):
    left, right, hop = 8000, 4000, 4000
    chunker = ChunkedEncoder(encoder, (), left, right, 24000)
    read_samples = 0

    def read(a, b):
        nonlocal read_samples
        read_samples += b - a
        return span[a:b]

    chunker.start_span(0)
    for stop in range(hop, len(span) + 1, hop):
        chunker.frames(read, max(0, stop - 24000), stop)
    assert read_samples / len(span) <= (left + hop + right) / hop + 0.1  # windows of 1.5 s would be 6
