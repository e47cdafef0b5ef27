"""Loading models: what works, and the clear errors for what cannot."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.model.resolve import resolve_model
from kwstream.errors import ModelLoadError
from kwstream.model.random_model import SIZES, save_random_ctc_model
from kwstream.model.vocab import ENGLISH_CTC_TOKENS

EXPORTED = pytest.param("onnx", marks=pytest.mark.slow)
"""The ONNX backend, which exports the model first (torch.export: seconds per model): the slow tier."""


def test_loads_a_local_checkpoint_and_reports_its_vocabulary(tiny_model):
    encoder = Encoder(EncoderSettings(model=str(tiny_model)))
    assert encoder.tokens == ENGLISH_CTC_TOKENS
    assert (encoder.blank_id, encoder.delimiter_id, encoder.samples_per_frame) == (0, 4, 320)
    log_probs = encoder.log_probs(np.zeros(16000, np.float32))
    assert log_probs.shape == (49, len(ENGLISH_CTC_TOKENS))  # 1 s = 49 frames of 20 ms (400-sample field)
    assert np.allclose(np.exp(log_probs).sum(axis=1), 1.0, atol=1e-4)


def test_threads_bound_numpys_blas_too(tiny_model):
    """``--threads N`` bounds every pool the model's work uses: ONNX Runtime's and numpy's BLAS (the
    first-layer statistics). Run in a fresh process, as the limit is process-wide; BLAS is first given
    three threads, as OpenBLAS starts on a 3-core machine."""
    code = ("import json; from threadpoolctl import threadpool_info, threadpool_limits\n"
            "from kwstream.model.encoder import Encoder, EncoderSettings\n"
            "blas = lambda: [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
            "threadpool_limits(3, user_api='blas'); before = blas()\n"
            f"Encoder(EncoderSettings(model={str(tiny_model)!r}, threads=1)); print(json.dumps([before, blas()]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout)
    if not before:
        pytest.skip("numpy's BLAS here is not one threadpoolctl can see (macOS Accelerate)")
    assert set(before) == {3}
    assert set(after) == {1}


def test_the_models_threads_stay_on_the_cores_the_process_may_use(tiny_model):
    """Without ``--threads``, ONNX Runtime's own default pinned a thread to every core of the machine, so ``taskset
    -c 0 kwstream listen`` ran on core 1 too. In a fresh process bound to one core, every thread stays on it."""
    import os

    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs Linux and two cores for a thread to stray to")
    code = ("import os, json\n"
            "core = min(os.sched_getaffinity(0)); os.sched_setaffinity(0, {core})  # as taskset: before any thread starts\n"
            "import numpy as np\n"
            "from kwstream.model.encoder import Encoder, EncoderSettings\n"
            f"encoder = Encoder(EncoderSettings(model={str(tiny_model)!r}, backend='onnx')); encoder.encode(np.zeros(16000, np.float32))\n"
            "print(json.dumps([core, sorted({c for t in os.listdir('/proc/self/task') for c in os.sched_getaffinity(int(t))})]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    core, used = json.loads(done.stdout)
    assert used == [core]


def test_int8_gives_nearly_the_same_log_probs(tiny_model):
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    full = Encoder(EncoderSettings(model=str(tiny_model))).log_probs(audio)
    int8 = Encoder(EncoderSettings(model=str(tiny_model), int8=True)).log_probs(audio)
    assert np.abs(full - int8).max() < 0.1


def test_pretrained_only_checkpoint_gives_features_but_no_letters(tmp_path, tiny_model):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    Wav2Vec2Model(Wav2Vec2Config(**SIZES["tiny"])).save_pretrained(tmp_path)
    encoder = Encoder(EncoderSettings(model=str(tmp_path)))
    assert not encoder.has_ctc_head and encoder.tokens == []
    frames = encoder.encode(np.zeros(16000, np.float32), layers=(0, 2))
    assert frames.log_probs is None and len(frames) == 49
    assert frames.features[2].shape == (49, 32)
    with pytest.raises(ModelLoadError, match="no trained CTC head"):
        encoder.log_probs(np.zeros(16000, np.float32))
    again = Encoder(EncoderSettings(model=str(tmp_path)))
    assert again.fingerprint == encoder.fingerprint  # the random head it is given does not count
    assert Encoder(EncoderSettings(model=str(tiny_model))).fingerprint != encoder.fingerprint


def test_features_and_log_probs_come_from_one_pass(tiny_model):
    encoder = Encoder(EncoderSettings(model=str(tiny_model)))
    audio = np.random.default_rng(1).normal(0, 0.1, 8000).astype(np.float32)
    frames = encoder.encode(audio, layers=(1,))
    assert np.allclose(frames.log_probs, encoder.log_probs(audio))
    assert set(frames.features) == {1} and frames.features[1].shape == (24, 32)
    assert len(frames.slice(3, 10)) == 7 and frames.slice(3, 10).features[1].shape == (7, 32)


@pytest.mark.parametrize("backend", ["torch", EXPORTED])
@pytest.mark.parametrize("config", [{}, {"conv_bias": True}, {"feat_extract_norm": "layer", "do_stable_layer_norm": True}],
                         ids=["group-norm CNN", "with conv bias", "layer-norm CNN"])
def test_cnn_and_transformer_stages_give_the_whole_models_numbers(config, backend, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCTC

    import kwstream.model.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "CACHE_DIR", tmp_path / "onnx")
    path = save_random_ctc_model(tmp_path / "model", seed=2, **config)
    audio = np.random.default_rng(6).normal(0.01, 0.1, 12345).astype(np.float32)
    normalised = (audio - audio.mean()) / np.sqrt(audio.var(ddof=1) + 1e-7)
    with torch.inference_mode():
        whole = AutoModelForCTC.from_pretrained(path).eval()(torch.from_numpy(normalised)[None], output_hidden_states=True)
    frames = Encoder(EncoderSettings(model=str(path), backend=backend)).encode(audio, layers=(0, 2))
    np.testing.assert_allclose(frames.log_probs, torch.log_softmax(whole.logits[0], -1).numpy(), atol=1e-4)
    np.testing.assert_allclose(frames.features[0], whole.hidden_states[0][0].numpy(), atol=1e-4)
    np.testing.assert_allclose(frames.features[2], whole.hidden_states[2][0].numpy(), atol=1e-4)


def test_reused_cnn_frames_stand_in_for_computing_them(tiny_model):
    encoder = Encoder(EncoderSettings(model=str(tiny_model)))
    audio = np.random.default_rng(7).normal(0, 0.1, 16000).astype(np.float32)
    full = encoder.encode(audio, layers=(1,))
    assert full.states is None  # only when asked for
    for reused in (30, len(full)):  # all of them: the CNN still makes the last few
        again = encoder.encode(audio, layers=(1,), reuse=full.slice(0, reused))
        np.testing.assert_allclose(again.cnn, full.cnn, atol=1e-5)
        np.testing.assert_allclose(again.log_probs, full.log_probs, atol=1e-5)
        np.testing.assert_allclose(again.features[1], full.features[1], atol=1e-5)
    other = np.random.default_rng(8).normal(0, 1, full.cnn[:30].shape).astype(np.float32)
    changed = encoder.encode(audio, reuse=replace(full.slice(0, 30), cnn=other))  # proof that the given frames are used
    assert np.abs(changed.log_probs[:30] - full.log_probs[:30]).max() > 1e-3


@pytest.mark.parametrize("backend", ["torch", EXPORTED])
@pytest.mark.parametrize("pre_norm", [True, False], ids=["pre-norm layers", "post-norm layers"])
def test_reused_states_stand_in_for_the_left_context(pre_norm, backend, tmp_path, monkeypatch):
    # Given the states the whole pass gives the first frames, attending to them instead of
    # recomputing those frames must give the later frames the whole pass's numbers.
    import kwstream.model.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "CACHE_DIR", tmp_path / "onnx")
    path = save_random_ctc_model(tmp_path / "model", seed=3, do_stable_layer_norm=pre_norm)
    encoder = Encoder(EncoderSettings(model=str(path), backend=backend))
    assert encoder.attends_to_states
    audio = np.random.default_rng(9).normal(0, 0.1, 16000).astype(np.float32)
    full = encoder.encode(audio, layers=(1,), keep_states=True)
    assert full.states.shape == (encoder.layers, len(full), 32)
    again = encoder.encode(audio, layers=(1,), reuse=full.slice(0, 30), context_frames=30, keep_states=True)
    for got, expected in [(again.log_probs, full.log_probs), (again.features[1], full.features[1]), (again.states, full.states)]:
        np.testing.assert_allclose(got, expected, atol=1e-4)
    other = full.states[:, :30] + np.random.default_rng(10).normal(0, 1, full.states[:, :30].shape).astype(np.float32)
    changed = encoder.encode(audio, layers=(1,), reuse=replace(full.slice(0, 30), states=other), context_frames=30)  # proof that they are used
    assert np.abs(changed.features[1][30:] - full.features[1][30:]).max() > 1e-3  # ten times the tolerance above


def test_a_model_whose_layers_cannot_take_states_recomputes_the_left_context(tiny_model, monkeypatch, caplog):
    import kwstream.model.stages as model_stages

    monkeypatch.setattr(model_stages, "_attend", lambda attention, queries, keys_values: queries * 0)  # not wav2vec2's attention
    with caplog.at_level(logging.INFO):
        encoder = Encoder(EncoderSettings(model=str(tiny_model), backend="torch"))
    assert not encoder.attends_to_states and "recompute the transformer's left context" in caplog.text
    audio = np.random.default_rng(11).normal(0, 0.1, 16000).astype(np.float32)
    full = encoder.encode(audio, keep_states=True)
    again = encoder.encode(audio, reuse=full.slice(0, 30), context_frames=30, keep_states=True)
    np.testing.assert_allclose(again.log_probs, full.log_probs, atol=1e-5)


def test_a_model_that_is_not_wav2vec2_ctc_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    with pytest.raises(ModelLoadError, match="cannot load model"):
        Encoder(EncoderSettings(model=str(tmp_path)))


def test_a_checkpoint_without_tokenizer_is_refused(tiny_model, tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((tiny_model / name).read_bytes())
    with pytest.raises(ModelLoadError, match="cannot load model"):
        Encoder(EncoderSettings(model=str(tmp_path)))


def test_unavailable_device_is_refused(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="not available"):
        Encoder(EncoderSettings(model=str(tiny_model), device="cuda"))


def test_paths_and_hub_ids_are_told_apart(tiny_model, tmp_path):
    assert resolve_model(str(tiny_model)) == (str(tiny_model), True)
    with pytest.raises(ModelLoadError, match="not a model directory"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="not a model directory"):
        resolve_model("./no/such/dir")


@pytest.mark.slow  # exports ONNX
def test_onnx_backend_gives_the_same_numbers_and_exports_once(tiny_model, tmp_path, monkeypatch):
    import kwstream.model.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "CACHE_DIR", tmp_path / "onnx")
    audio = np.random.default_rng(4).normal(0, 0.1, 23000).astype(np.float32)  # not the export's length
    reference = Encoder(EncoderSettings(model=str(tiny_model), backend="torch")).encode(audio, layers=(1, 2))
    onnx = Encoder(EncoderSettings(model=str(tiny_model), backend="onnx")).encode(audio, layers=(1, 2))
    np.testing.assert_allclose(onnx.log_probs, reference.log_probs, atol=1e-4)
    for layer in (1, 2):
        np.testing.assert_allclose(onnx.features[layer], reference.features[layer], atol=1e-4)
    exported = sorted((tmp_path / "onnx").rglob("*.onnx"))
    assert [p.name for p in exported] == ["cnn.onnx", "transformer.onnx"]
    stamps = [p.stat().st_mtime_ns for p in exported]
    int8 = Encoder(EncoderSettings(model=str(tiny_model), backend="onnx", int8=True)).encode(audio)
    assert np.abs(int8.log_probs - reference.log_probs).max() < 0.1
    assert [p.stat().st_mtime_ns for p in exported] == stamps  # the cached export was reused


@pytest.mark.slow  # exports ONNX
def test_weights_stored_in_float16_export_in_float16_with_the_same_numbers(tiny_model, tmp_path, monkeypatch):
    """The bundled model ships so (``python -m training.export_onnx --half``): half the size; int8 still quantises them."""
    import shutil

    import onnx

    import kwstream.model.onnx_backend as onnx_backend
    import kwstream.model.onnx_export as onnx_export
    from kwstream.model.checkpoint_files import weights_key
    from training.export_onnx import store_half

    def large_weights_dtypes(model) -> list[int]:
        [graph] = (tmp_path / "onnx").glob(f"{weights_key(model)}-v*/transformer.onnx")
        return [t.data_type for t in onnx.load(str(graph)).graph.initializer if np.prod(t.dims) >= onnx_export.MIN_HALVED]

    monkeypatch.setattr(onnx_export, "CACHE_DIR", tmp_path / "onnx")
    half = tmp_path / "half"
    shutil.copytree(tiny_model, half)
    store_half(half)
    audio = np.random.default_rng(4).normal(0, 0.1, 23000).astype(np.float32)
    for model in (tiny_model, half):
        torch_run = Encoder(EncoderSettings(model=str(model), backend="torch")).encode(audio)
        onnx_run = Encoder(EncoderSettings(model=str(model), backend="onnx")).encode(audio)
        np.testing.assert_allclose(onnx_run.log_probs, torch_run.log_probs, atol=1e-4)
    assert set(large_weights_dtypes(tiny_model)) == {onnx.TensorProto.FLOAT}  # float32 weights are not rounded
    halved = large_weights_dtypes(half)  # all but what the exporter computes from them (weight norm's product)
    assert halved.count(onnx.TensorProto.FLOAT16) >= 0.8 * len(halved)
    int8 = Encoder(EncoderSettings(model=str(half), backend="onnx", int8=True)).encode(audio)
    assert np.abs(int8.log_probs - torch_run.log_probs).max() < 0.1
    [quantised] = (tmp_path / "onnx").glob(f"{weights_key(half)}-v*/{onnx_backend.INT8_GRAPH}")
    graph = onnx.load(str(quantised)).graph
    products = [node for node in graph.node if node.op_type == "MatMulInteger"]
    assert products  # the casts were folded first
    weights = {t.name: t.data_type for t in graph.initializer}
    # unsigned weights: unsigned by signed saturates on x86 CPUs without VNNI
    assert {weights[node.input[1]] for node in products} == {onnx.TensorProto.UINT8}
    [projection] = onnx_backend.feature_projection_products(next(quantised.parent.glob("transformer.onnx")))
    assert projection in {node.name for node in graph.node if node.op_type == "MatMul"}  # left in float


@pytest.mark.slow  # exports ONNX
def test_an_exported_checkpoint_opens_without_pytorch_and_tells_the_same(tiny_model, tmp_path, monkeypatch):
    import kwstream.model.checkpoint as checkpoint
    import kwstream.model.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "CACHE_DIR", tmp_path / "onnx")
    stale = [tmp_path / "onnx" / "0123456789abcdef-v2-cnn.onnx", tmp_path / "onnx" / "0123456789abcdef-v1"]
    stale[0].parent.mkdir()
    stale[0].write_bytes(b"old graph")
    stale[1].mkdir()
    torch_encoder = Encoder(EncoderSettings(model=str(tiny_model), backend="torch"))
    Encoder(EncoderSettings(model=str(tiny_model), backend="onnx"))  # loads with PyTorch and exports
    assert not any(p.exists() for p in stale)  # exports of older graphs are removed when exporting

    def no_pytorch(*args):
        raise AssertionError("the checkpoint was loaded with PyTorch")

    monkeypatch.setattr(checkpoint, "load_checkpoint", no_pytorch)
    monkeypatch.setattr("kwstream.model.encoder.load_checkpoint", no_pytorch)
    lean = Encoder(EncoderSettings(model=str(tiny_model)))
    for name in ("name", "has_ctc_head", "tokens", "blank_id", "delimiter_id", "normalize", "parameters", "layers",
                 "fingerprint", "samples_per_frame", "attends_to_states"):
        assert getattr(lean, name) == getattr(torch_encoder, name), name
    audio = np.random.default_rng(4).normal(0, 0.1, 20000).astype(np.float32)
    np.testing.assert_allclose(lean.encode(audio).log_probs, torch_encoder.encode(audio).log_probs, atol=1e-4)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        EncoderSettings(backend="tensorrt")


def test_auto_backend_falls_back_to_torch_when_the_model_cannot_be_exported(tiny_model, tmp_path, monkeypatch, caplog):
    import kwstream.model.onnx_export as onnx_export

    def refuse(*args):  # stands in for the exporter's failures on unusual checkpoints, which a tiny model lacks
        raise ModelLoadError("cannot export this model to ONNX (UnsupportedOperator); use --backend torch")

    monkeypatch.setattr(onnx_export, "CACHE_DIR", tmp_path / "onnx")
    monkeypatch.setattr(onnx_export, "_export", refuse)
    audio = np.random.default_rng(5).normal(0, 0.1, 16000).astype(np.float32)
    fallback = Encoder(EncoderSettings(model=str(tiny_model)))
    assert "running it with PyTorch instead" in caplog.text
    assert fallback.encode(audio).log_probs.shape == (49, len(ENGLISH_CTC_TOKENS))
    with pytest.raises(ModelLoadError, match="cannot export"):
        Encoder(EncoderSettings(model=str(tiny_model), backend="onnx"))
