"""Average checkpoints weight by weight: a "model soup" (Wortsman et al., 2022).

Checkpoints fine-tuned from one model stay close enough that their mean is a model too, and it
often keeps what each of them learned where either alone lost something (docs/model-v10-runs.md,
"Weight averages"). Only checkpoints of one architecture average: the same config and the same
tensors, name by name and shape by shape. The mean is taken in float32 and written in float32; the
first model's other files (config, vocabulary, ``kwstream.json`` thresholds) are copied beside it,
and ``average.json`` names the models that went into it.

Usage: python -m training.average --out DIR MODEL_DIR MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
NOT_COPIED = {WEIGHTS, "onnx", "finetune_state.json", "average.json"}
"""What belongs to one checkpoint alone: its weights, their export and its training record."""


def _architecture(model: Path) -> dict:
    config = json.loads((model / "config.json").read_text())
    return {k: v for k, v in config.items() if k not in ("_name_or_path", "transformers_version", "torch_dtype")}


def average_weights(models: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise float32 mean of the models' weights; SystemExit (one line) when they differ in shape."""
    if len(models) < 2:
        raise SystemExit("average: give at least two models")
    for model in models:
        if not (model / WEIGHTS).is_file() or not (model / "config.json").is_file():
            raise SystemExit(f"average: {model} has no {WEIGHTS} and config.json (a save_pretrained folder)")
    first = _architecture(models[0])
    for model in models[1:]:
        if _architecture(model) != first:
            raise SystemExit(f"average: {model}'s config differs from {models[0]}'s: not the same architecture")
    total = {name: tensor.float() for name, tensor in load_file(models[0] / WEIGHTS).items()}
    for model in models[1:]:
        weights = load_file(model / WEIGHTS)
        if weights.keys() != total.keys():
            odd = sorted(weights.keys() ^ total.keys())
            raise SystemExit(f"average: {model} holds other tensors than {models[0]} ({odd[0]}, {len(odd)} in all)")
        for name, tensor in weights.items():
            if tensor.shape != total[name].shape:
                raise SystemExit(f"average: {name} is {tuple(tensor.shape)} in {model}, {tuple(total[name].shape)} in {models[0]}")
            total[name] += tensor.float()
    return {name: (tensor / len(models)).contiguous() for name, tensor in total.items()}


def write_average(out: Path, models: list[Path]) -> None:
    """Write the models' mean to ``out`` with the first model's other files and ``average.json``."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SystemExit(f"average: {out} exists and is not an empty folder")
    weights = average_weights(models)
    out.mkdir(parents=True, exist_ok=True)
    for item in models[0].iterdir():
        if item.is_file() and item.name not in NOT_COPIED:
            shutil.copy(item, out / item.name)
    save_file(weights, out / WEIGHTS, metadata={"format": "pt"})
    (out / "average.json").write_text(json.dumps({"models": [str(m.resolve()) for m in models]}, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the average")
    parser.add_argument("models", type=Path, nargs="+", help="save_pretrained folders of one architecture")
    args = parser.parse_args()
    write_average(args.out, args.models)
    print(f"{args.out}: the mean of {len(args.models)} models")


if __name__ == "__main__":
    main()
