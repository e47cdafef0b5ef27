"""Training on what a stream computes: the torch pass over a clip gives the listen pipeline's frames."""

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2ForCTC

from kwstream.audio.io import read_audio
from kwstream.model.encoder import Encoder, EncoderSettings, cnn_frames
from kwstream.model.resolve import BUNDLED_MODEL_DIR
from kwstream.stream.pipeline import PipelineSettings
from training.evaluate import normalize_audio
from training.fixed_statistics import use_fixed_statistics
from training.frontend import student_forward
from training.stream_cer import streamed_log_probs
from training.stream_shaped import StreamShape

AUDIO = BUNDLED_MODEL_DIR.parent / "audio"
CONV = [(400, 160), (3, 2), (3, 1), (3, 1)]  # version 10's CNN
SHAPES = [PipelineSettings(), PipelineSettings(hop_s=0.2, left_context_s=0.6, right_context_s=0.3)]


@pytest.fixture(scope="module")
def bundled() -> Wav2Vec2ForCTC:
    return Wav2Vec2ForCTC.from_pretrained(BUNDLED_MODEL_DIR).eval()


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(EncoderSettings(model=str(BUNDLED_MODEL_DIR), threads=1))


def _clips() -> dict[str, np.ndarray]:
    """Real speech from its first sample (four spoken digits of four speakers, end to end), and 6 s
    of the demo, with quiet stretches."""
    digits = np.concatenate([read_audio(path) for path in sorted(AUDIO.glob("fsdd_*.wav"))])
    return {"digits": digits, "demo": read_audio(AUDIO / "demo_hey_stop.flac")[:96000]}


@pytest.mark.parametrize("samples", [3999, 16000, 16001, 37_123])
def test_every_frame_becomes_final_once_in_order(samples):
    plan = StreamShape(4000, 8000, 4000).plan(samples, CONV)
    steps = [chunk.step for chunk in plan]
    finals = [f for step in steps for f in range(step.final_from, step.final_to)]
    assert finals == list(range(cnn_frames(samples, CONV)))
    assert all(step.attended_frames <= step.final_from - step.first_frame for step in steps)
    assert all(step.first_frame <= chunk.cnn_from <= step.total_frames for chunk, step in zip(plan, steps))


@pytest.mark.parametrize("settings", SHAPES, ids=["default", "other"])
@pytest.mark.parametrize("name", ["digits", "demo"])
def test_the_pass_gives_the_chunked_encoders_log_probabilities(bundled, encoder, settings, name):
    audio = _clips()[name]
    expected = streamed_log_probs(encoder, audio, settings)
    with torch.no_grad():
        outputs = StreamShape.of(settings).forward(bundled, torch.from_numpy(audio)[None])
        streamed = bundled.lm_head(outputs[-1]).log_softmax(-1)[0].numpy()
        whole = bundled.lm_head(student_forward(bundled, torch.from_numpy(normalize_audio(audio))[None])[-1])
        whole = whole.log_softmax(-1)[0].numpy()
    assert streamed.shape == expected.shape
    assert np.abs(streamed - expected).max() < 1e-3
    assert np.abs(whole - expected).max() > 0.1  # the stream's frames are not the whole clip's


def test_one_chunk_is_the_whole_clip_and_trains_the_same(bundled):
    """A span no longer than a hop is one chunk: the whole-clip pass, values and gradients alike."""
    audio = _clips()["digits"][:3600]
    shape = StreamShape(4000, 8000, 4000)
    grads = []
    for forward in (lambda m: shape.forward(m, torch.from_numpy(audio)[None]),
                    lambda m: student_forward(m, torch.from_numpy(normalize_audio(audio))[None])):
        model = Wav2Vec2ForCTC.from_pretrained(BUNDLED_MODEL_DIR)
        forward(model)[-1].square().mean().backward()
        grads.append(model.wav2vec2.feature_extractor.conv_layers[0].conv.weight.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-3, atol=1e-7)


def test_rows_of_a_batch_are_streamed_apart(bundled):
    clips = _clips()
    batch = torch.stack([torch.from_numpy(clips["demo"][:16000 * 3]), torch.from_numpy(clips["demo"][16000 * 3:])])
    shape = StreamShape(4000, 8000, 4000)
    with torch.no_grad():
        together = shape.forward(bundled, batch)[-1]
        apart = torch.cat([shape.forward(bundled, row[None])[-1] for row in batch])
    assert torch.allclose(together, apart, atol=1e-4)


def test_running_statistics_and_fixed_statistics_are_refused():
    with pytest.raises(ValueError, match="running"):
        StreamShape.of(PipelineSettings(statistics_memory_s=3))
    model = Wav2Vec2ForCTC.from_pretrained(BUNDLED_MODEL_DIR)
    channels = model.config.conv_dim[0]
    use_fixed_statistics(model, np.zeros(channels, np.float32), np.ones(channels, np.float32))
    with pytest.raises(ValueError, match="fixed statistics"):
        StreamShape(4000, 8000, 4000).forward(model, torch.zeros(1, 16000))


def test_streamed_clips_get_up_to_the_lead_of_quiet_before_them():
    """``--stream-lead``: the clip itself unchanged after 0 to that many seconds of zeros, differing from clip to clip."""
    from training.finetune import with_lead

    clip = np.linspace(0.1, 0.5, 800, dtype=np.float32)
    rng = np.random.default_rng(0)
    leads = []
    for _ in range(50):
        led = with_lead(clip, 0.45, rng)
        lead = len(led) - len(clip)
        assert 0 <= lead <= int(0.45 * 16000) and not led[:lead].any() and np.array_equal(led[lead:], clip)
        leads.append(lead)
    assert len(set(leads)) > 40 and max(leads) > 0.3 * 16000
    assert with_lead(clip, 0.0, rng) is clip
