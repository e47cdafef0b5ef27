"""The streamed-versus-whole CER tool reads the stream's frames the way the listen pipeline makes them."""

import numpy as np

from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.stream.pipeline import PipelineSettings
from training.stream_cer import streamed_log_probs


def test_streamed_frames_cover_the_audio_and_match_the_whole_where_context_is_complete(tiny_model):
    encoder = Encoder(EncoderSettings(model=str(tiny_model), threads=1))
    audio = np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32)
    whole = encoder.encode(audio).log_probs
    streamed = streamed_log_probs(encoder, audio, PipelineSettings())
    assert streamed.shape == whole.shape
    long_context = streamed_log_probs(encoder, audio, PipelineSettings(hop_s=1.5, left_context_s=1.5, right_context_s=1.5))
    assert np.abs(long_context - whole).max() < np.abs(streamed - whole).max()

