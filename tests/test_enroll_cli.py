"""`kwstream enroll`, `kwstream keywords` and `--enrolled` as a user runs them: subprocesses, real
recordings (kwstream/assets/audio), the bundled model (the tiny random one where only wiring is under test) and
the virtual microphone for --record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from conftest import ASSET_AUDIO, load_word, make_speech_stream
from kwstream.cli.main import main
from virtual_mic import no_input_env, virtual_mic_env

pytestmark = pytest.mark.slow



def _takes() -> list[str]:
    """Three takes of one real word (theo's "three"): as recorded, 6 % slower, and with faint white noise
    (20 dB below the recording's level; version 11 refuses a take at 6 dB, which version 10 took)."""
    folder = Path(tempfile.mkdtemp(prefix="kwstream-takes-"))
    word = load_word("3_theo_0")
    noise = np.random.default_rng(0).normal(0, 0.1 * word.std(), len(word))
    takes = [word, soxr.resample(word, 16000, 17000), word + noise]
    paths = [folder / f"take{i}.wav" for i in range(3)]
    for path, audio in zip(paths, takes):
        soundfile.write(path, audio.astype(np.float32), 16000)
    return [str(p) for p in paths]


WORDS = _takes()
BUNDLED = str(ASSET_AUDIO.parent / "model")
"""Enrollment needs features in which takes of one word resemble each other: a trained model."""


def kwstream(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kwstream", *args], capture_output=True, timeout=timeout, env=env)


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr, stderr
    [line] = [x for x in stderr.splitlines() if x.startswith("kwstream: error:")]
    for fragment in fragments:
        assert fragment in line, line


def test_enroll_list_listen_and_remove(tmp_path, tiny_model):
    store = str(tmp_path / "store")
    # keyword-free speech as a stream, as --negatives means it: a lone 0.4 s word alone scores 0 in
    # every window (too short for the examples to fit), which the detector never compares with a threshold
    negatives = make_speech_stream(["9_nicolas_2", "0_lucas_1", "7_jackson_0"]).write(tmp_path / "negatives.wav")
    enrolled = kwstream("enroll", "word", "--from", *WORDS, "--model", BUNDLED, "--store", store,
                        "--negatives", str(negatives))
    assert enrolled.returncode == 0, enrolled.stderr.decode()
    assert "enrolled 'word' from 3 examples (letter posteriors + layer 3, threshold" in enrolled.stderr.decode()  # the bundled model's default
    metadata = json.loads((tmp_path / "store" / "word" / "keyword.json").read_text())
    calibration = metadata["calibration"]
    assert calibration["negative_hours"] > 0.05 and len(calibration["leave_one_out"]) == 3  # the bundled speech and the user's
    assert "expected at this threshold: recall" in enrolled.stderr.decode()

    listed = kwstream("keywords", "--store", store)
    assert listed.returncode == 0 and listed.stdout.decode().startswith("word ")
    for junk, text in (("junk", "{not json"), ("nothing", "null")):
        (tmp_path / "store" / junk).mkdir()
        (tmp_path / "store" / junk / "keyword.json").write_text(text)
    damaged = kwstream("keywords", "--store", store)  # one damaged folder hid every other keyword
    lines = damaged.stdout.decode().splitlines()
    assert damaged.returncode == 1 and any(x.startswith("word ") for x in lines), damaged.stderr.decode()
    for junk in ("junk", "nothing"):
        assert any(x.startswith(f"{junk} ") and "UNREADABLE" in x and f"--remove {junk}" in x for x in lines), lines
        assert kwstream("keywords", "--store", store, "--remove", junk).returncode == 0

    stream = make_speech_stream(["7_jackson_0", "9_nicolas_2"]).write(tmp_path / "talk.wav")
    heard = kwstream("listen", "--enrolled", "word:0.01", "--store", store, "--model", BUNDLED,
                     "--file", str(stream), "--fast", "--json")
    assert heard.returncode == 0, heard.stderr.decode()
    detections = [json.loads(line) for line in heard.stdout.decode().splitlines()]
    assert detections and {d["keyword"] for d in detections} == {"word"}

    both = kwstream("listen", "--keywords", "stop", "--enrolled", "word", "--store", store, "--model", BUNDLED,
                    "--file", str(stream), "--fast")
    assert both.returncode == 0 and "for stop, word" in both.stderr.decode()

    assert kwstream("keywords", "--store", store, "--remove", "word").returncode == 0
    assert "no enrolled or trained keywords" in kwstream("keywords", "--store", store).stderr.decode()
    assert_user_error(kwstream("keywords", "--store", store, "--remove", "word"), "no enrolled keyword 'word'")


def test_user_mistakes_are_one_line_and_write_nothing(tmp_path, tiny_model, capsys):
    """In-process (`kwstream.cli.main`), the same code path as the command, without a new interpreter each time."""
    store = tmp_path / "store"
    model = ["--model", BUNDLED, "--store", str(store)]

    def assert_error(args: list[str], *fragments: str) -> None:
        assert main(args) == 2
        err = capsys.readouterr().err
        [line] = [x for x in err.splitlines() if x.startswith("kwstream: error:")]
        assert "Traceback" not in err and all(f in line for f in fragments), err

    assert_error(["enroll", "word", "--from", WORDS[0], *model], "at least 2")
    assert_error(["enroll", "word", "--record", "1", *model], "at least 2")
    assert_error(["enroll", "word", "--from", WORDS[0], str(tmp_path / "missing.wav"), *model], "no such audio file")
    os.mkfifo(tmp_path / "take.fifo")  # nothing writes to it: reading it would hang
    assert_error(["enroll", "word", "--from", WORDS[0], WORDS[1], str(tmp_path / "take.fifo"), *model], "not a regular file", "take.fifo (a FIFO); save the take to a file first")
    assert_error(["enroll", "word", "--from", *WORDS, "--negatives", str(tmp_path / "take.fifo"), *model], "not a regular file")
    assert_error(["enroll", "word", "--from", *WORDS, "--negatives", str(tmp_path / "missing"), *model], "no such audio file")
    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(16000, np.float32), 16000)
    assert_error(["enroll", "word", "--from", WORDS[0], WORDS[1], str(silence), *model], "holds no speech")
    assert_error(["enroll", "word", "--from", WORDS[0], WORDS[1], WORDS[0], *model], "are the same recording")
    assert_error(["enroll", "bad/name", "--from", *WORDS, *model], "letters, digits")
    assert_error(["enroll", "word", "--voice", "--layer", "2", "--from", *WORDS, *model], "--voice", "leave out --layer")
    assert not store.exists() or not any(store.iterdir())
    assert_error(["listen", "--enrolled", "nope", *model, "--file", WORDS[0]], "no enrolled keyword 'nope'")
    assert_error(["listen", "--enrolled", "nope:2", *model, "--file", WORDS[0]], "must be in [0, 1]")

    assert main(["enroll", "word", "--from", *WORDS, *model]) == 0
    assert_error(["enroll", "word", "--from", *WORDS, *model], "already enrolled", "--replace")
    other = ["--model", str(tiny_model), "--store", str(store)]
    assert_error(["listen", "--enrolled", "word", *other, "--file", WORDS[0]], "enrolled with model", "enroll it again")


@pytest.mark.parametrize(("take", "message"), [
    ("folder", "folder is a directory, not an audio file"),
    ("x" * 300, "File name too long"),  # stat fails: the take's own check of what it is raised a traceback
])
def test_a_take_that_is_no_file_is_refused_in_one_line_before_the_model_loads(tmp_path, capsys, take, message):
    (tmp_path / "folder").mkdir()
    assert main(["enroll", "word", "--from", *WORDS, str(tmp_path / take), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    [line] = err.strip().splitlines()
    assert "Traceback" not in err and line.startswith("kwstream: error:") and line.endswith(message), err
    assert "save the take to a file first" not in line  # only a stream (a FIFO, /dev/stdin) is told that


def test_help_says_how_many_takes_enrollment_accepts(capsys):
    with pytest.raises(SystemExit):
        main(["enroll", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert help_text.count("2 or more, 3 or more recommended") == 2, help_text  # 1 is refused: "at least 2"


def test_no_microphone_points_to_enrolling_from_recordings(tmp_path):
    """enroll takes recordings with --from (listen's --file is no option of enroll's); the microphone is checked
    before the model loads (a model that is not there is never reached)."""
    result = kwstream("enroll", "word", "--record", "2", "--model", str(tmp_path / "no-model"), "--store", str(tmp_path / "store"),
                      env=no_input_env(tmp_path))
    assert_user_error(result, "no input device found", "connect a microphone or enroll from recordings with --from FILE")
    assert "--file" not in result.stderr.decode()


def test_record_from_the_microphone(tmp_path, tiny_model):
    """--record through PortAudio: each take opens the virtual microphone, which replays the recording."""
    stream = make_speech_stream(["7_jackson_0"], edge_s=0.6)
    env = virtual_mic_env(tmp_path, (np.clip(stream.audio, -1, 1) * 32767).astype(np.int16))
    result = kwstream("enroll", "word", "--record", "2", "--model", str(tiny_model), "--store", str(tmp_path / "store"), env=env)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "take 1/2" in stderr and "take 2/2" in stderr and "dBFS" in stderr
    metadata = json.loads((tmp_path / "store" / "word" / "keyword.json").read_text())
    assert metadata["sources"] == ["microphone take 1", "microphone take 2"]


def test_a_silent_microphone_take_is_refused_with_its_reason(tmp_path, tiny_model):
    env = virtual_mic_env(tmp_path, np.zeros(3 * 16000, np.int16))
    result = kwstream("enroll", "word", "--record", "2", "--model", str(tiny_model), "--store", str(tmp_path / "store"), env=env)
    assert_user_error(result, "microphone take 1 holds no speech")
    assert result.stderr.decode().count("take 1/2") == 3  # asked again after each refusal, then given up
