"""Average checkpoints weight by weight: a "model soup" (Wortsman et al., 2022).

Checkpoints fine-tuned from one model stay close enough that their mean is a model too, and it
often keeps what each of them learned where either alone lost something (docs/model-v10-runs.md,
"Weight averages"). Only checkpoints of one architecture average: the same config and the same
tensors, name by name and shape by shape. Floating-point weights are averaged in float32 and written
in float32 (`python -m training.export_onnx --model DIR --half` stores them in float16 for shipping);
any other tensor must be equal in every model and is kept. The first model's other files (config,
vocabulary, ``kwstream.json``) are copied beside the mean, folders never; ``average.json`` names the
models that went into it. The first model's thresholds were calibrated for another model: recalibrate
them before the average ships (``kwstream eval --calibrate``).

Usage: python -m training.average --out DIR MODEL_DIR MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
NOT_COPIED = {WEIGHTS, "finetune_state.json", "average.json"}
"""What belongs to one checkpoint alone: its weights and its records."""
THRESHOLDS = "kwstream.json"


def _architecture(model: Path) -> dict[str, object]:
    """The config less what names or dates the checkpoint (path, library version, storage dtype)."""
    try:
        config = json.loads((model / "config.json").read_text())
    except json.JSONDecodeError as error:
        raise SystemExit(f"average: {model / 'config.json'} is not JSON ({error})") from None
    return {k: v for k, v in config.items() if k not in ("_name_or_path", "transformers_version", "torch_dtype")}


def _weights(model: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(model / WEIGHTS)
    except SafetensorError as error:
        raise SystemExit(f"average: {model / WEIGHTS} is not a safetensors file ({error})") from None


def average_weights(models: list[Path]) -> dict[str, torch.Tensor]:
    """The models' floating-point weights averaged in float32, their other tensors kept (they must be
    equal); SystemExit with one line where the models differ in architecture, tensors or shapes."""
    if len(models) < 2:
        raise SystemExit("average: give at least two models")
    for model in models:
        if not (model / WEIGHTS).is_file() or not (model / "config.json").is_file():
            raise SystemExit(f"average: {model} has no {WEIGHTS} and config.json (a save_pretrained folder)")
    first = _architecture(models[0])
    for model in models[1:]:
        if _architecture(model) != first:
            raise SystemExit(f"average: {model}'s config differs from {models[0]}'s: not the same architecture")
    kept = _weights(models[0])
    total = {name: tensor.float() for name, tensor in kept.items() if tensor.is_floating_point()}
    for model in models[1:]:
        weights = _weights(model)
        if weights.keys() != kept.keys():
            odd = sorted(weights.keys() ^ kept.keys())
            raise SystemExit(f"average: {model} holds other tensors than {models[0]} ({odd[0]}, {len(odd)} in all)")
        for name, tensor in weights.items():
            if tensor.shape != kept[name].shape:
                raise SystemExit(f"average: {name} is {tuple(tensor.shape)} in {model}, {tuple(kept[name].shape)} in {models[0]}")
            if name in total:
                total[name] += tensor.float()
            elif not torch.equal(tensor, kept[name]):
                raise SystemExit(f"average: {name} ({tensor.dtype}) differs between {model} and {models[0]} and cannot be averaged")
    return {name: (total[name] / len(models)).contiguous() if name in total else tensor for name, tensor in kept.items()}


def write_average(out: Path, models: list[Path]) -> str:
    """Write the models' mean to ``out`` with the first model's other files and ``average.json``; say where
    the thresholds came from."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SystemExit(f"average: {out} exists and is not an empty folder")
    weights = average_weights(models)
    out.mkdir(parents=True, exist_ok=True)
    for item in models[0].iterdir():
        if item.is_file() and item.name not in NOT_COPIED:
            shutil.copy(item, out / item.name)
    save_file(weights, out / WEIGHTS, metadata={"format": "pt"})
    (out / "average.json").write_text(json.dumps({"models": [str(m.resolve()) for m in models]}, indent=1) + "\n")
    if (out / THRESHOLDS).is_file():
        return f"thresholds ({THRESHOLDS}) copied from {models[0]}: recalibrate them before it ships"
    return f"no thresholds: {models[0]} has no {THRESHOLDS}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the average")
    parser.add_argument("models", type=Path, nargs="+", help="save_pretrained folders of one architecture")
    args = parser.parse_args()
    thresholds = write_average(args.out, args.models)
    print(f"{args.out}: the mean of {len(args.models)} models; {thresholds}")


if __name__ == "__main__":
    main()
