"""The bundled model's recipe as a user runs it: build a tiny corpus with espeak-ng and flite, train
a few steps on top of the shipped weights (``--init``), resume, export. Wiring, not accuracy: three
steps cannot teach anything, so the test checks what was written and that it loads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCTC

from kwstream.model.resolve import BUNDLED_MODEL_DIR

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="no bundled model in kwstream/assets/model"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None, reason="needs espeak-ng and flite"),
]


def module(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"training.{name}", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    result = module("corpus", "--out", str(out), "--hours", "0.01", "--eval-hours", "0.005", "--fsdd", "", "--wwb", "",
                    "--jobs", "1")
    assert result.returncode == 0, result.stderr
    return out


def test_training_from_the_shipped_weights_resumes_and_exports(corpus: Path, tmp_path: Path) -> None:
    out, ckpt = tmp_path / "model", tmp_path / "ckpt"
    # A small learning rate: at train's default peak (1e-3) reached in one warm-up step, Adam's first steps wreck
    # version 10's Whisper-derived blocks (CER 0.96 after three), which training.finetune trains at 1e-4 after 150.
    common = ["--corpus", str(corpus), "--out", str(out), "--ckpt-dir", str(ckpt), "--threads", "1", "--warmup", "1",
              "--lr", "1e-5"]
    first = module("train", *common, "--init", str(BUNDLED_MODEL_DIR), "--steps", "2")
    assert first.returncode == 0, first.stderr
    assert json.loads((out / "eval_results.json").read_text())["step"] == 2
    second = module("train", *common, "--init", str(BUNDLED_MODEL_DIR), "--steps", "3", "--resume")
    assert second.returncode == 0, second.stderr
    assert "resumed at step 2" in second.stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["parameters"] == sum(p.numel() for p in AutoModelForCTC.from_pretrained(out).parameters())
    # Started from the shipped weights, not from scratch: a random model's CER is near 1.
    assert results["all_cer"] < 0.6


def test_distillation_trains_a_prediction_head_on_the_teachers_features(corpus: Path, tmp_path: Path) -> None:
    from training.corpus import read_manifest
    from kwstream.model.speech_embedding import DIMENSIONS
    from training.teacher import load_features

    common = ["--corpus", str(corpus), "--out", str(tmp_path / "model"), "--ckpt-dir", str(tmp_path / "ckpt"),
              "--threads", "1", "--warmup", "1", "--init", str(BUNDLED_MODEL_DIR), "--steps", "2"]
    refused = module("train", *common, "--distill-weight", "1")
    assert refused.returncode == 2 and "teacher.npz" in refused.stderr and "Traceback" not in refused.stderr
    built = module("teacher", "--corpus", str(corpus))
    assert built.returncode == 0, built.stderr
    features = load_features(corpus / "teacher.npz")
    rows = read_manifest(corpus / "train.jsonl")
    assert set(features) == {r.path for r in rows}
    for r in rows:  # one 96-dim step per 80 ms after the first 760 ms window
        steps, dims = features[r.path].shape
        assert dims == DIMENSIONS and abs(steps - max(1.0, (r.seconds - 0.76) / 0.08 + 1)) <= 2
    trained = module("train", *common, "--distill-weight", "1")
    assert trained.returncode == 0, trained.stderr
    state = torch.load(tmp_path / "ckpt" / "last.pt", map_location="cpu")
    assert state["head"] is not None and state["train_config"]["distill_weight"] == 1.0
    # The shipped model is still a plain wav2vec2: the head lives in the checkpoint only.
    assert AutoModelForCTC.from_pretrained(tmp_path / "model").config.model_type == "wav2vec2"


def test_init_from_a_folder_without_a_model_is_one_line(corpus: Path, tmp_path: Path) -> None:
    result = module("train", "--corpus", str(corpus), "--out", str(tmp_path / "m"), "--init", str(tmp_path))
    assert result.returncode == 2
    assert "no saved model there" in result.stderr and "Traceback" not in result.stderr
