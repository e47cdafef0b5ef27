"""Weight averaging ("model soups"): the mean of checkpoints of one architecture, a model transformers loads."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Wav2Vec2ForCTC

from training.average import WEIGHTS, average_weights, write_average


def _shifted_copy(model: Path, folder: Path, shift: float, dtype: torch.dtype = torch.float32) -> Path:
    shutil.copytree(model, folder)
    weights = {name: (tensor + shift).to(dtype) for name, tensor in load_file(model / WEIGHTS).items()}
    save_file(weights, folder / WEIGHTS, metadata={"format": "pt"})
    (folder / "kwstream.json").write_text(json.dumps({"shift": shift}))
    (folder / "finetune_state.json").write_text("{}")
    return folder


def test_the_average_is_the_elementwise_mean_and_loads(tiny_model, tmp_path):
    a = _shifted_copy(tiny_model, tmp_path / "a", 0.0)
    b = _shifted_copy(tiny_model, tmp_path / "b", 1.0, torch.float16)  # the bundled model stores float16
    c = _shifted_copy(tiny_model, tmp_path / "c", 5.0)
    note = write_average(tmp_path / "soup", [a, b, c])
    half = load_file(b / WEIGHTS)
    soup = load_file(tmp_path / "soup" / WEIGHTS)
    for name, tensor in load_file(tiny_model / WEIGHTS).items():
        assert soup[name].dtype == torch.float32
        torch.testing.assert_close(soup[name], (tensor.float() + tensor.float() + 5.0 + half[name].float()) / 3)
    assert json.loads((tmp_path / "soup" / "kwstream.json").read_text()) == {"shift": 0.0}  # the first model's
    assert "recalibrate" in note
    assert not (tmp_path / "soup" / "finetune_state.json").exists()
    assert len(json.loads((tmp_path / "soup" / "average.json").read_text())["models"]) == 3
    Wav2Vec2ForCTC.from_pretrained(tmp_path / "soup")


def test_tensors_that_are_not_weights_are_kept_when_equal_and_refused_when_not(tiny_model, tmp_path):
    a = _shifted_copy(tiny_model, tmp_path / "a", 0.0)
    b = _shifted_copy(tiny_model, tmp_path / "b", 2.0)
    for folder, step in ((a, 7), (b, 7)):
        weights = load_file(folder / WEIGHTS)
        save_file({**weights, "step": torch.tensor([step])}, folder / WEIGHTS)
    assert torch.equal(average_weights([a, b])["step"], torch.tensor([7]))
    save_file({**load_file(b / WEIGHTS), "step": torch.tensor([8])}, b / WEIGHTS)
    with pytest.raises(SystemExit, match="step .* differs"):
        average_weights([a, b])


def test_checkpoints_of_other_tensors_shapes_or_configs_are_refused_in_one_line(tiny_model, tmp_path):
    a = _shifted_copy(tiny_model, tmp_path / "a", 0.0)
    b = _shifted_copy(tiny_model, tmp_path / "b", 1.0)
    weights = load_file(b / WEIGHTS)
    name = next(iter(weights))
    save_file({**weights, name: torch.zeros(3)}, b / WEIGHTS)
    with pytest.raises(SystemExit, match=f"average: {re.escape(name)} is \\(3,\\)"):
        average_weights([a, b])
    save_file({k: v for k, v in weights.items() if k != name}, b / WEIGHTS)
    with pytest.raises(SystemExit, match=f"holds other tensors than .* \\({re.escape(name)}, 1 in all\\)"):
        average_weights([a, b])
    config = json.loads((b / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (b / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="config differs"):
        average_weights([a, b])
    (b / "config.json").write_text("{not json")
    with pytest.raises(SystemExit, match="config.json is not JSON"):
        average_weights([a, b])
    with pytest.raises(SystemExit, match="at least two"):
        average_weights([a])


def test_an_output_that_is_taken_is_refused_before_any_model_is_read(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("")
    not_models = [tmp_path / "none", tmp_path / "none"]  # reading them first would give another message
    with pytest.raises(SystemExit, match="exists and is not an empty folder"):
        write_average(taken, not_models)


@pytest.mark.slow
def test_the_command_refuses_a_folder_that_is_not_a_model_without_a_traceback(tiny_model, tmp_path):
    done = subprocess.run([sys.executable, "-m", "training.average", "--out", str(tmp_path / "soup"), str(tiny_model),
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == f"average: {tmp_path} has no {WEIGHTS} and config.json (a save_pretrained folder)"
    assert not (tmp_path / "soup").exists()


def test_a_runs_last_checkpoint_exports_as_a_complete_model(tiny_model, tmp_path):
    """``training.finetune --export-last``: OUT/last/ from OUT/last.pt, a model transformers loads, with the scores the
    run logged at that step (what ``training.average`` and ``training.dev_report`` take)."""
    from dataclasses import asdict

    from training.finetune import FinetuneConfig

    out = tmp_path / "run"
    out.mkdir()
    trained = {name: tensor + 0.5 for name, tensor in Wav2Vec2ForCTC.from_pretrained(tiny_model).state_dict().items()}
    torch.save({"model": trained, "optimizer": {}, "step": 7, "best": 0.3,
                "config": asdict(FinetuneConfig(steps=7, source_repeat=(("precise", 1),)))}, out / "last.pt")
    (out / "log.jsonl").write_text(json.dumps({"step": 0, "score": 0.4}) + "\n" + json.dumps({"step": 7, "score": 0.3}) + "\n")
    result = subprocess.run([sys.executable, "-m", "training.finetune", "--init", str(tiny_model), "--out", str(out),
                             "--export-last"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    exported = Wav2Vec2ForCTC.from_pretrained(out / "last").state_dict()
    for name, tensor in trained.items():
        torch.testing.assert_close(exported[name], tensor)
    state = json.loads((out / "last" / "finetune_state.json").read_text())
    assert state["step"] == 7 and state["score"] == 0.3 and state["config"]["source_repeat"] == [["precise", 1]]
    assert (out / "last" / "vocab.json").is_file()  # the processor, as best/ has it
