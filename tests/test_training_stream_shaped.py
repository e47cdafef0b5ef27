"""Training on what a stream computes: the torch pass over a clip gives the listen pipeline's frames."""

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2ForCTC

from kwstream.audio.io import read_audio
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.model.resolve import BUNDLED_MODEL_DIR
from kwstream.stream.pipeline import PipelineSettings
from training.evaluate import normalize_audio
from training.frontend import student_forward
from training.stream_cer import streamed_log_probs
from training.stream_shaped import StreamShape, frames_for, stream_plan
from training.fixed_statistics import use_fixed_statistics

AUDIO = BUNDLED_MODEL_DIR.parent / "audio"
KERNELS, STRIDES = [400, 3, 3, 3], [160, 2, 1, 1]  # version 10's CNN


@pytest.fixture(scope="module")
def bundled() -> Wav2Vec2ForCTC:
    return Wav2Vec2ForCTC.from_pretrained(BUNDLED_MODEL_DIR).eval()


def _clip() -> np.ndarray:
    """A real spoken digit inside silence, as a span of the stream holds it."""
    silence = np.zeros(8000, np.float32)
    return np.concatenate([silence, read_audio(AUDIO / "fsdd_7_jackson_0.wav"), silence])


@pytest.mark.parametrize("samples", [3999, 16000, 16001, 37_123])
def test_every_frame_becomes_final_once_in_order(samples):
    plan = stream_plan(samples, KERNELS, STRIDES, 4000, 8000, 4000, 4000)
    finals = [f for chunk in plan for f in range(chunk.final_from, chunk.final_to)]
    assert finals == list(range(frames_for(samples, KERNELS, STRIDES)))
    assert all(chunk.attended <= chunk.final_from - chunk.first_frame for chunk in plan)
    assert all(chunk.first_frame <= chunk.cnn_from <= chunk.total_frames for chunk in plan)


def test_the_pass_gives_the_chunked_encoders_log_probabilities(bundled):
    audio = _clip()
    settings = PipelineSettings()
    expected = streamed_log_probs(Encoder(EncoderSettings(model=str(BUNDLED_MODEL_DIR), threads=1)), audio, settings)
    x = torch.from_numpy(normalize_audio(audio))[None]
    with torch.no_grad():
        streamed = bundled.lm_head(StreamShape.of(settings).forward(bundled, x)[-1]).log_softmax(-1)[0].numpy()
        whole = bundled.lm_head(student_forward(bundled, x)[-1]).log_softmax(-1)[0].numpy()
    assert streamed.shape == expected.shape
    assert np.abs(np.exp(streamed) - np.exp(expected)).max() < 1e-2
    assert np.abs(np.exp(whole) - np.exp(expected)).max() > 0.1  # the stream's frames are not the whole clip's


def test_a_loss_on_the_streamed_frames_reaches_the_first_layer(bundled):
    model = Wav2Vec2ForCTC.from_pretrained(BUNDLED_MODEL_DIR)
    x = torch.from_numpy(normalize_audio(_clip()))[None]
    StreamShape(4000, 8000, 4000).forward(model, x, first_stop=1234)[-1].square().mean().backward()
    assert model.wav2vec2.feature_extractor.conv_layers[0].conv.weight.grad.abs().sum() > 0


def test_a_model_with_fixed_statistics_is_refused():
    model = Wav2Vec2ForCTC.from_pretrained(BUNDLED_MODEL_DIR)
    channels = model.config.conv_dim[0]
    use_fixed_statistics(model, np.zeros(channels, np.float32), np.ones(channels, np.float32))
    with pytest.raises(ValueError, match="fixed statistics"):
        StreamShape(4000, 8000, 4000).forward(model, torch.zeros(1, 16000))
