"""Listening with the ONNX export imports neither torch nor transformers, and hears what the
PyTorch path hears."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kwstream.assets import DEMO_AUDIO, MODEL_DIR
from kwstream.model.checkpoint_files import weights_key
from kwstream.model.onnx_export import find_export

HEAVY = ("torch", "transformers")
LISTEN = """
import json, sys
from kwstream.cli.main import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "imported": [m for m in %r if m in sys.modules]}), file=sys.stderr)
""" % (HEAVY,)

pytestmark = pytest.mark.skipif(find_export(MODEL_DIR, weights_key(MODEL_DIR)) is None,
                                reason="no ONNX export of the bundled model (python -m training.export_onnx)")


def listen(*options: str) -> tuple[list[dict], list[str]]:
    """The detections of ``kwstream listen`` on the demo recording, and the heavy modules it imported."""
    args = ["listen", "--model", str(MODEL_DIR), "--keywords", "hey,stop", "--file", str(DEMO_AUDIO), "--fast", "--json", *options]
    run = subprocess.run([sys.executable, "-c", LISTEN, *args], capture_output=True, text=True, timeout=300)
    report = json.loads(run.stderr.strip().splitlines()[-1])
    assert report["status"] == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()], report["imported"]


def test_listening_with_the_export_imports_neither_torch_nor_transformers_and_hears_what_torch_hears():
    lean, imported = listen()
    assert imported == []
    assert [d["keyword"] for d in lean] == ["hey", "stop"]
    reference, imported = listen("--backend", "torch")
    assert imported == list(HEAVY)
    # the same keywords, spoken at the same time (detected_at also counts compute time, which differs)
    assert [(d["keyword"], d["start"], d["end"]) for d in lean] == [(d["keyword"], d["start"], d["end"]) for d in reference]
    assert [d["score"] for d in lean] == pytest.approx([d["score"] for d in reference], abs=1e-3)
