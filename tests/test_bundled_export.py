"""The bundled model's shipped ONNX export (kwstream/assets/model/onnx) is the export of the
shipped weights, and gives PyTorch's numbers on real speech: its first run needs no export."""

from __future__ import annotations

import pytest

from kwstream.assets import DEMO_AUDIO, MODEL_DIR
from kwstream.audio.io import read_audio
from kwstream.model.checkpoint_files import weights_key
from kwstream.model.onnx_export import BESIDE_CHECKPOINT, GRAPHS_VERSION, OnnxExport, find_export
from training.export_onnx import COMMAND, difference_from_torch

MAX_EXPORT_MB = 20
"""The model has 3.9 M parameters: about 15.5 MB in fp32, graphs included."""
REGENERATE = f"the shipped ONNX export is not the export of the shipped weights: run `{COMMAND}` and commit kwstream/assets/model/onnx"


def test_the_shipped_export_is_of_the_shipped_weights():
    export = OnnxExport.load(MODEL_DIR / BESIDE_CHECKPOINT)
    assert export is not None, f"no export of graphs version {GRAPHS_VERSION}: {REGENERATE}"
    assert export.weights_key == weights_key(MODEL_DIR), REGENERATE
    assert find_export(MODEL_DIR, weights_key(MODEL_DIR)).directory == export.directory
    assert sum(p.stat().st_size for p in export.directory.iterdir()) < MAX_EXPORT_MB * 1e6


def test_the_shipped_export_gives_pytorchs_numbers_on_speech():
    if OnnxExport.load(MODEL_DIR / BESIDE_CHECKPOINT) is None:
        pytest.fail(REGENERATE)
    assert difference_from_torch(MODEL_DIR, read_audio(DEMO_AUDIO)) < 1e-4, REGENERATE
