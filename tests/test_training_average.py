"""Weight averaging ("model soups"): the mean of checkpoints of one architecture, a model transformers loads."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Wav2Vec2ForCTC

from training.average import WEIGHTS, average_weights, write_average


def _shifted_copy(model, folder, shift: float):
    shutil.copytree(model, folder)
    weights = {name: tensor + shift for name, tensor in load_file(model / WEIGHTS).items()}
    save_file(weights, folder / WEIGHTS, metadata={"format": "pt"})
    (folder / "kwstream.json").write_text(json.dumps({"shift": shift}))
    return folder


def test_the_average_is_the_elementwise_mean_and_loads(tiny_model, tmp_path):
    a = _shifted_copy(tiny_model, tmp_path / "a", 0.0)
    b = _shifted_copy(tiny_model, tmp_path / "b", 1.0)
    c = _shifted_copy(tiny_model, tmp_path / "c", 5.0)
    write_average(tmp_path / "soup", [a, b, c])
    original = load_file(tiny_model / WEIGHTS)
    soup = load_file(tmp_path / "soup" / WEIGHTS)
    for name, tensor in original.items():
        torch.testing.assert_close(soup[name], tensor.float() + 2.0)
    assert json.loads((tmp_path / "soup" / "kwstream.json").read_text()) == {"shift": 0.0}  # the first model's
    assert len(json.loads((tmp_path / "soup" / "average.json").read_text())["models"]) == 3
    Wav2Vec2ForCTC.from_pretrained(tmp_path / "soup")


def test_checkpoints_of_other_shapes_are_refused_in_one_line(tiny_model, tmp_path):
    a = _shifted_copy(tiny_model, tmp_path / "a", 0.0)
    b = _shifted_copy(tiny_model, tmp_path / "b", 1.0)
    weights = load_file(b / WEIGHTS)
    name = next(iter(weights))
    weights[name] = torch.zeros(3)
    save_file(weights, b / WEIGHTS)
    with pytest.raises(SystemExit, match=f"average: {name} is \\(3,\\)"):
        average_weights([a, b])
    config = json.loads((b / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (b / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="config differs"):
        average_weights([a, b])
    with pytest.raises(SystemExit, match="at least two"):
        average_weights([a])


def test_the_command_refuses_a_folder_that_is_not_a_model_without_a_traceback(tiny_model, tmp_path):
    done = subprocess.run([sys.executable, "-m", "training.average", "--out", str(tmp_path / "soup"), str(tiny_model),
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == f"average: {tmp_path} has no {WEIGHTS} and config.json (a save_pretrained folder)"
    assert not (tmp_path / "soup").exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(SystemExit, match="exists and is not an empty folder"):
        write_average(tmp_path / "taken", [tiny_model, tiny_model])
