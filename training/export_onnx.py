"""Write a checkpoint's ONNX export beside it (``<model>/onnx``), by default the bundled model's,
so that its first run needs no export and no torch: run it whenever the bundled weights change.

    python -m training.export_onnx [--model DIR]

It prints the largest difference from PyTorch on the demo recording; ``tests/test_bundled_export.py``
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


def difference_from_torch(directory: Path, audio: np.ndarray) -> float:
    """The largest difference between the log-probabilities of the ONNX and the PyTorch backend on ``audio``."""
    onnx, torch = (Encoder(EncoderSettings(model=str(directory), backend=b)).log_probs(audio) for b in ("onnx", "torch"))
    return float(np.abs(onnx - torch).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_DIR, help="checkpoint directory (default: the bundled model)")
    args = parser.parse_args()
    export = export_beside(args.model)
    size_mb = sum(p.stat().st_size for p in export.directory.iterdir()) / 1e6
    print(f"wrote {export.directory} ({size_mb:.1f} MB, weights {export.weights_key}); "
          f"largest difference from PyTorch on {DEMO_AUDIO.name}: {difference_from_torch(args.model, read_audio(DEMO_AUDIO)):.2g}")


if __name__ == "__main__":
    main()
