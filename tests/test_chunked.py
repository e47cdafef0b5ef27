"""The chunked encoder: frames line up with the span, each sample is encoded about once, and each
frame is what the chunk in which it became final made of it.

Exactness against the whole encoding is checked where no frame is reused, on a checkpoint whose
input is not normalised and whose CNN normalises each frame on its own (layer norm). Once frames
are reused, a frame keeps what its chunk made of it (the normalisation of that chunk's audio, the
context its transformer layers saw), which ``test_encoder`` checks is exactly what the model
computes from those inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from kwstream.stream.chunked import ChunkedEncoder, ChunkStep, chunk_step
from kwstream.model.encoder import EncodedFrames, Encoder, EncoderSettings
from kwstream.model.random_model import save_random_ctc_model

SPF = 320


def test_chunk_steps_worked_by_hand():
    """Version 10's CNN (one frame per 320 samples, 400-sample receptive field), a step every 4,000
    samples, 25 frames of left context, 4,000 samples of right context. A chunk that makes n frames
    reuses all but its last two of the previous chunk's; it attends to those already final."""
    conv = [(400, 160), (3, 2), (3, 1), (3, 1)]
    expected = [ChunkStep(0, 7, 0, 0, 0, 0),  # 4,000 samples: 7 frames, none with its right context yet
                ChunkStep(0, 19, 0, 0, 0, 7),  # nothing final before it: nothing to reuse
                ChunkStep(0, 32, 19, 7, 7, 19),
                ChunkStep(0, 44, 32, 19, 19, 32),
                ChunkStep(7, 57, 37, 25, 32, 44)]  # audio from frame 32 - 25 = 7: 17,760 samples make 50 frames
    steps, final_to, previous_total = [], 0, None
    for stop in range(4000, 20001, 4000):
        steps.append(chunk_step(final_to, previous_total, stop, left_frames=25, right_samples=4000, conv=conv))
        final_to, previous_total = steps[-1].final_to, steps[-1].total_frames
    assert steps == expected


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


class Recording(Encoder):
    """The real encoder, keeping each pass's output and the audio's first sample, and counting the
    samples whose frames its CNN and its transformer computed (not those taken from ``reuse``)."""

    def __init__(self, inner: Encoder) -> None:
        self.__dict__.update(inner.__dict__)
        self.passes: list[tuple[int, int, EncodedFrames]] = []
        self.reused: list[int] = []
        self.cnn_samples = self.transformer_samples = 0

    def encode(self, audio, layers=(), reuse=None, context_frames=0, keep_states=False, running=None):
        out = super().encode(audio, layers, reuse, context_frames, keep_states, running)
        self.reused.append(0 if reuse is None else len(reuse))
        if reuse is None:
            reuse, context_frames = out.slice(0, 0), 0
        self.cnn_samples += len(audio) - self.reusable_frames(len(audio), len(reuse)) * SPF
        self.transformer_samples += len(audio) - self.reusable_frames(len(audio), context_frames) * SPF
        self.passes.append((self.read_from, self.read_from + len(audio), out))
        return out


def run_recorded(encoder: Encoder, audio: np.ndarray, left: int, right: int, hop: int):
    recording = Recording(encoder)
    chunker = ChunkedEncoder(recording, (), left, right, 24000)

    def read(a, b):
        recording.read_from = a
        return audio[a:b]

    results = {}
    for stop in range(hop, len(audio) + 1, hop):
        results[stop] = chunker.frames(read, max(0, stop - 24000), stop)
    return recording, chunker, results


def test_final_frames_come_from_the_chunk_with_their_left_and_right_context(encoder, span):
    left, right, hop = 8000, 4000, 4000
    recording, _, results = run_recorded(encoder, span, left, right, hop)
    first, frames = results[32000]  # the window [0.5 s, 2 s)
    frame = 60  # 1.2 s in: final since the step whose audio reached right_context past it
    start, stop, out = next((a, b, out) for a, b, out in recording.passes if encoder.frames_for(b - right) > frame)
    assert start <= frame * SPF - left and stop >= frame * SPF + 400 + right
    got = frames.slice(frame - first // SPF, frame - first // SPF + 1)
    np.testing.assert_array_equal(got.log_probs, out.log_probs[frame - start // SPF:frame - start // SPF + 1])


def test_the_model_computes_only_the_new_audio_and_the_right_context(encoder, span):
    left, right, hop = 8000, 4000, 4000
    recording, chunker, _ = run_recorded(encoder, span, left, right, hop)
    steps = len(span) // hop
    assert encoder.attends_to_states
    # the first two steps' audio is no longer than the right context: their CNN frames are not kept
    assert recording.reused[:2] == [0, 0] and all(recording.reused[2:])
    # the CNN: each sample once (the first step's twice), and per step the receptive field of the first new frame
    assert len(span) - 400 <= recording.cnn_samples <= len(span) + hop + steps * 400
    # the transformer's layers: each step its hop and the provisional right context again
    assert recording.transformer_samples <= steps * (hop + right + 2 * 400)
    assert recording.transformer_samples >= len(span) + (steps - 1) * right - steps * 400
    assert abs(chunker.encoded_samples - recording.transformer_samples) <= steps * 400  # what bench reports


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


def _last_frames(chunker: ChunkedEncoder, audio: np.ndarray, span_start: int) -> np.ndarray:
    *_, (_, _, frames) = steps(chunker, audio, span_start, 4000, 24000)
    return frames.log_probs


def test_running_statistics_carry_what_earlier_spans_heard(encoder, span):
    """With a statistics memory, a span's chunks are normalised with what the stream heard before it too."""
    loud = np.random.default_rng(5).normal(0, 1.0, 16000).astype(np.float32) * np.linspace(0, 3, 16000, dtype=np.float32)
    args = (encoder, (), 8000, 4000, 24000)
    for memory_s, changes in ((0.0, False), (10.0, True)):
        fresh = _last_frames(ChunkedEncoder(*args, statistics_memory_s=memory_s), span, 0)
        heard = ChunkedEncoder(*args, statistics_memory_s=memory_s)
        _last_frames(heard, loud, 0)
        after = _last_frames(heard, span, 16000)  # a new span, after the loud one
        assert (np.abs(after - fresh).max() > 1e-3) == changes
