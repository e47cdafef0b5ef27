"""The chunked encoder: frames line up with the span, each sample is encoded about once, and the
CNN's output is reused exactly.

Exactness is checked on a checkpoint whose input is not normalised and whose CNN normalises each
frame on its own (layer norm), so a chunked encoding must equal the whole one. Otherwise a reused
CNN frame keeps the normalisation of the chunk in which it became final (the waveform's, and for
group-norm checkpoints such as ours the first layer's), so the frame itself is exact and what
the transformer makes of it only close.
"""

from __future__ import annotations

import numpy as np
import pytest

from kwstream.chunked import ChunkedEncoder
from kwstream.encoder import Encoder, EncoderSettings
from kwstream.random_model import save_random_ctc_model

SPF = 320


@pytest.fixture(scope="module")
def encoder(tiny_model) -> Encoder:
    return Encoder(EncoderSettings(model=str(tiny_model)))


@pytest.fixture(scope="module")
def local_encoder(tmp_path_factory) -> Encoder:
    """A checkpoint whose output for a frame depends on nothing but audio: no input normalisation,
    and a CNN that normalises each frame on its own (``feat_extract_norm="layer"``)."""
    path = save_random_ctc_model(tmp_path_factory.mktemp("layer_norm"), normalize=False, feat_extract_norm="layer",
                                 do_stable_layer_norm=True)
    return Encoder(EncoderSettings(model=str(path)))


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


def test_with_unlimited_context_every_window_is_the_full_encoding_of_its_span(local_encoder, span):
    # Context longer than the span: each step re-encodes the whole span so far, so the frames of a
    # window must be exactly the frames of one pass over the span, sliced at the window's start.
    encoder = local_encoder
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


@pytest.mark.parametrize("local", [True, False], ids=["local", "normalised over chunks"])
def test_final_frames_come_from_a_chunk_with_their_left_and_right_context(local, local_encoder, encoder, span):
    # A frame that became final was computed from audio that reaches right_context past it; that
    # chunk's encoding of the frame is what later windows see. With normalisation over chunks, the
    # reused CNN frames were normalised over earlier chunks, so its log-probabilities are only close.
    encoder = local_encoder if local else encoder
    left, right, hop = 8000, 4000, 4000
    chunker = ChunkedEncoder(encoder, (), left, right, 24000)
    results = {stop: (first, frames) for (_, stop), first, frames in steps(chunker, span, 0, hop, 24000)}
    first, frames = results[32000]  # the window [0.5 s, 2 s)
    frame = 60  # 1.2 s in: final since the step that ended at 1.5 s
    chunk_start = None
    for s in range(hop, len(span) + 1, hop):  # the step at which frame 60 became final
        if encoder.frames_for(s - right) > frame:
            chunk_start = max(0, encoder.frames_for(s - hop - right) - left // SPF) * SPF
            expected = encoder.encode(span[chunk_start:s]).slice(frame - chunk_start // SPF, frame - chunk_start // SPF + 1)
            break
    got = frames.slice(frame - first // SPF, frame - first // SPF + 1)
    np.testing.assert_allclose(got.log_probs, expected.log_probs, atol=1e-5 if local else 1e-2)


class CnnCounting(Encoder):
    """The real encoder, counting the samples its CNN computes (those not covered by reused frames)."""

    def __init__(self, inner: Encoder) -> None:
        self.__dict__.update(inner.__dict__)
        self.cnn_samples = 0

    def encode(self, audio, layers=(), reuse=None):
        self.cnn_samples += len(audio) - (0 if reuse is None else len(reuse) * self.samples_per_frame)
        return super().encode(audio, layers, reuse)


def test_the_cnn_computes_only_the_new_audio_and_the_right_context(encoder, span):
    counting = CnnCounting(encoder)
    left, right, hop = 8000, 4000, 4000
    chunker = ChunkedEncoder(counting, (), left, right, 24000)
    for stop in range(hop, len(span) + 1, hop):
        chunker.frames(lambda a, b: span[a:b], max(0, stop - 24000), stop)
    steps = len(span) // hop
    # each step: its hop, the provisional right context again, and the frame where the reuse ends
    assert counting.cnn_samples <= steps * (hop + right + 2 * 400)
    assert counting.cnn_samples >= len(span) + (steps - 1) * right - steps * 400
    assert chunker.encoded_samples > counting.cnn_samples + len(span)  # the transformer sees the left context again


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
