"""A model trained with fixed first-layer statistics (training.fixed_statistics) runs with them in
kwstream: both backends give what the trained PyTorch model gives, and every chunk is normalised alike."""

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2ForCTC

from kwstream.model.checkpoint_files import FIXED_STATISTICS_KEY, read_checkpoint_files
from kwstream.model.cnn_stats import RunningStatistics
from kwstream.model.encoder import Encoder, EncoderSettings
from training.fixed_statistics import fix_statistics, pooled_statistics, use_fixed_statistics


def _clips(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 1, 8000) * np.linspace(0.2, 2, 8000)).astype(np.float32) for _ in range(n)]


@pytest.fixture
def fixed_model(tiny_model, tmp_path):
    """The tiny model given statistics pooled over a few clips, saved as training saves it."""
    model = Wav2Vec2ForCTC.from_pretrained(tiny_model)
    mean, var = pooled_statistics(model, _clips(3, 0))
    use_fixed_statistics(model, mean, var)
    out = tmp_path / "fixed"
    shutil.copytree(tiny_model, out)
    model.save_pretrained(out)
    return out, model.eval()


def test_pooled_statistics_are_those_of_all_frames_together(tiny_model):
    model = Wav2Vec2ForCTC.from_pretrained(tiny_model)
    clips = _clips(2, 1)
    conv = model.wav2vec2.feature_extractor.conv_layers[0].conv
    with torch.no_grad():
        frames = torch.cat([conv(torch.from_numpy((c - c.mean()) / np.sqrt(c.var(ddof=1) + 1e-7))[None, None].float())[0]
                            for c in clips], -1).double().numpy()
    mean, var = pooled_statistics(model, clips)
    np.testing.assert_allclose(mean, frames.mean(-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(var, frames.var(-1), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # exports ONNX
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_kwstream_runs_the_model_with_its_fixed_statistics(fixed_model, backend, tmp_path, monkeypatch):
    import kwstream.model.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "CACHE_DIR", tmp_path / "onnx")
    directory, trained = fixed_model
    assert FIXED_STATISTICS_KEY in json.loads((directory / "config.json").read_text())
    assert read_checkpoint_files(str(directory), directory).first_layer_statistics is not None
    audio = _clips(1, 2)[0] * 0.1
    with torch.no_grad():
        x = torch.from_numpy((audio - audio.mean()) / np.sqrt(audio.var(ddof=1) + 1e-7)).float()[None]
        expected = trained(x).logits.log_softmax(-1)[0].numpy()
    got = Encoder(EncoderSettings(model=str(directory), backend=backend)).encode(audio).log_probs
    np.testing.assert_allclose(got, expected, atol=1e-4)
    plain = tmp_path / "plain"  # the same weights with each input's own statistics give other numbers
    shutil.copytree(directory, plain)
    config = json.loads((plain / "config.json").read_text())
    del config[FIXED_STATISTICS_KEY]
    (plain / "config.json").write_text(json.dumps(config))
    plain_encoder = Encoder(EncoderSettings(model=str(plain), backend=backend))
    own = plain_encoder.encode(audio).log_probs
    assert np.abs(own - expected).max() > 1e-2
    fixed_encoder = Encoder(EncoderSettings(model=str(directory), backend=backend))
    assert fixed_encoder.fingerprint != plain_encoder.fingerprint  # enrolled keywords of one do not load on the other
    running = RunningStatistics(5.0)  # a stream's running statistics give way to the model's fixed ones
    np.testing.assert_array_equal(fixed_encoder.encode(audio, running=running).log_probs, fixed_encoder.encode(audio).log_probs)


def test_fix_statistics_keeps_a_models_own(fixed_model):
    directory, trained = fixed_model
    model = Wav2Vec2ForCTC.from_pretrained(directory)
    own = json.loads((directory / "config.json").read_text())[FIXED_STATISTICS_KEY]
    mean, var = fix_statistics(model, _clips(2, 5))  # other clips: their statistics are not taken
    np.testing.assert_allclose(mean, own["mean"], rtol=1e-6)
    np.testing.assert_allclose(var, own["var"], rtol=1e-6)


def test_statistics_of_the_wrong_shape_are_refused_at_load(fixed_model, tmp_path):
    from kwstream.errors import ModelLoadError

    directory, _ = fixed_model
    broken = tmp_path / "broken"
    shutil.copytree(directory, broken)
    config = json.loads((broken / "config.json").read_text())
    config[FIXED_STATISTICS_KEY]["var"] = config[FIXED_STATISTICS_KEY]["var"][:-1]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="first-layer statistics"):
        Encoder(EncoderSettings(model=str(broken), backend="torch"))
