"""Write a checkpoint's ONNX export beside it (``<model>/onnx``), by default the bundled model's,
so that its first run needs no export and no torch: run it whenever the bundled weights change.

    python -m training.export_onnx [--model DIR] [--half]

``--half`` first stores the checkpoint's weights in float16 (rounding them once; ``config.json``
keeps ``dtype`` float32, so every load computes in float32 as before): the bundled model ships so,
at half the size, and its export stores those weights in float16 too (``onnx_export``).

It prints the largest difference in probability from PyTorch on the demo recording; ``tests/test_bundled_export.py``
fails until the shipped export matches the shipped weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from kwstream.assets import DEMO_AUDIO, MODEL_DIR
from kwstream.audio.io import read_audio
from kwstream.model.checkpoint import load_checkpoint
from kwstream.model.checkpoint_files import weights_key
from kwstream.model.encoder import Encoder, EncoderSettings, torch_stages
from kwstream.model.onnx_export import BESIDE_CHECKPOINT, OnnxExport, export_stages

COMMAND = "python -m training.export_onnx"


def export_beside(directory: Path) -> OnnxExport:
    """Export the checkpoint in ``directory`` into ``directory/onnx``, replacing an older export."""
    cnn, transformer, export = torch_stages(load_checkpoint(str(directory)), directory / BESIDE_CHECKPOINT,
                                            weights_key(directory))
    return export_stages(cnn, transformer, export)


def store_half(directory: Path) -> None:
    """Round the float32 weights in ``directory/model.safetensors`` to float16 and store them so."""
    from safetensors.numpy import load_file, save_file

    path = directory / "model.safetensors"
    weights = load_file(path)
    halved = {name: w.astype(np.float16) if w.dtype == np.float32 else w for name, w in weights.items()}
    for name, weight in weights.items():
        if weight.dtype == np.float32 and not np.allclose(halved[name].astype(np.float32), weight, rtol=1e-3, atol=1e-6):
            raise SystemExit(f"{name} does not fit float16 (beyond its range or precision); keep the weights in float32")
    save_file(halved, path, metadata={"format": "pt"})


def difference_from_torch(directory: Path, audio: np.ndarray) -> float:
    """The largest difference between the token probabilities of the ONNX and the PyTorch backend on
    ``audio`` (not log-probabilities: float32's rounding leaves 2e-4 on the unlikely tokens' -36)."""
    onnx, torch = (Encoder(EncoderSettings(model=str(directory), backend=b)).log_probs(audio) for b in ("onnx", "torch"))
    return float(np.abs(np.exp(onnx) - np.exp(torch)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_DIR, help="checkpoint directory (default: the bundled model)")
    parser.add_argument("--half", action="store_true", help="store the weights in float16 first (the bundled model)")
    args = parser.parse_args()
    if args.half:
        store_half(args.model)
    export = export_beside(args.model)
    size_mb = sum(p.stat().st_size for p in export.directory.iterdir()) / 1e6
    print(f"wrote {export.directory} ({size_mb:.1f} MB, weights {export.weights_key}); "
          f"largest difference in probability from PyTorch on {DEMO_AUDIO.name}: {difference_from_torch(args.model, read_audio(DEMO_AUDIO)):.2g}")


if __name__ == "__main__":
    main()
