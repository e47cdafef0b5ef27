"""Listening with the ONNX export imports neither torch nor transformers, and hears what the
PyTorch path hears; without them (a lean install) the commands that need them say which extra to install."""

from __future__ import annotations

import json
import os
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

pytestmark = [pytest.mark.slow, pytest.mark.skipif(find_export(MODEL_DIR, weights_key(MODEL_DIR)) is None,
                                                    reason="no ONNX export of the bundled model (python -m training.export_onnx)")]


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


WITHOUT = "import sys; sys.modules.update(dict.fromkeys(sys.argv.pop(1).split(','))); " \
          "from kwstream.cli.main import main; sys.exit(main(sys.argv[1:]))"
"""``kwstream`` as a lean install runs it: the modules named in its first argument cannot be imported."""


def without(modules: tuple[str, ...], *args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", WITHOUT, ",".join(modules), *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def test_a_lean_install_listens_with_the_bundled_model_and_says_how_to_get_the_hub_one():
    run = without(HEAVY, "listen", "--keywords", "hey,stop", "--file", str(DEMO_AUDIO), "--fast")
    assert run.returncode == 0, run.stderr
    assert [line.split()[1] for line in run.stdout.splitlines()] == ["hey", "stop"]
    assert "runs the bundled model; pip install 'kwstream[torch]'" in run.stderr


@pytest.mark.parametrize("missing,extra,command,needs", [
    ("torch", "torch", ["bench", "--random", "tiny", "--seconds", "2", "--repeats", "1"], "this needs"),
    ("torch", "torch", ["listen", "--keywords", "hey", "--file", str(DEMO_AUDIO), "--fast", "--backend", "torch"], "this needs"),
    ("torch", "torch", ["listen", "--keywords", "hey", "--file", str(DEMO_AUDIO), "--fast", "--trained", "mine"], "--trained needs"),
    ("torch", "torch", ["train", "--data", str(DEMO_AUDIO.parent), "--out", "head.pt"], "this needs"),
    ("matplotlib", "plot", ["eval", "--keywords", "hey", "--labels", "labels.csv", "--plot", "det.png", str(DEMO_AUDIO)], "this needs"),
])
def test_a_command_that_needs_an_extra_names_it_in_one_line(missing, extra, command, needs, tmp_path):
    (tmp_path / "labels.csv").write_text("stream,keyword,start,end\n")
    run = without(HEAVY + ("matplotlib",), *command, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (f"kwstream: error: {needs} {missing}, which the install left out: "
                                                   f"pip install 'kwstream[{extra}]'"), run.stderr
