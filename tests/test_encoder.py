"""Loading models: what works, and the clear errors for what cannot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kwstream.encoder import CtcEncoder, EncoderSettings, resolve_model
from kwstream.errors import ModelLoadError
from kwstream.random_model import ENGLISH_CTC_TOKENS, SIZES, save_english_processor


def test_loads_a_local_checkpoint_and_reports_its_vocabulary(tiny_model):
    encoder = CtcEncoder(EncoderSettings(model=str(tiny_model)))
    assert encoder.tokens == ENGLISH_CTC_TOKENS
    assert (encoder.blank_id, encoder.delimiter_id, encoder.samples_per_frame) == (0, 4, 320)
    log_probs = encoder.log_probs(np.zeros(16000, np.float32))
    assert log_probs.shape == (49, len(ENGLISH_CTC_TOKENS))  # 1 s = 49 frames of 20 ms (400-sample field)
    assert np.allclose(np.exp(log_probs).sum(axis=1), 1.0, atol=1e-4)


def test_int8_gives_nearly_the_same_log_probs(tiny_model):
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    full = CtcEncoder(EncoderSettings(model=str(tiny_model))).log_probs(audio)
    int8 = CtcEncoder(EncoderSettings(model=str(tiny_model), int8=True)).log_probs(audio)
    assert np.abs(full - int8).max() < 0.1


def test_pretrained_only_checkpoint_is_refused(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    Wav2Vec2Model(Wav2Vec2Config(vocab_size=len(ENGLISH_CTC_TOKENS), **SIZES["tiny"])).save_pretrained(tmp_path)
    save_english_processor(tmp_path)
    with pytest.raises(ModelLoadError, match="no trained CTC head"):
        CtcEncoder(EncoderSettings(model=str(tmp_path)))


def test_a_model_that_is_not_wav2vec2_ctc_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    with pytest.raises(ModelLoadError, match="cannot load model"):
        CtcEncoder(EncoderSettings(model=str(tmp_path)))


def test_a_checkpoint_without_tokenizer_is_refused(tiny_model, tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((tiny_model / name).read_bytes())
    with pytest.raises(ModelLoadError, match="cannot load model"):
        CtcEncoder(EncoderSettings(model=str(tmp_path)))


def test_unavailable_device_is_refused(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="not available"):
        CtcEncoder(EncoderSettings(model=str(tiny_model), device="cuda"))


def test_paths_and_hub_ids_are_told_apart(tiny_model, tmp_path):
    assert resolve_model(str(tiny_model)) == (str(tiny_model), True)
    with pytest.raises(ModelLoadError, match="not a model directory"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="not a model directory"):
        resolve_model("./no/such/dir")
