"""`kwstream` as a user runs it: a subprocess, its stdout, stderr and exit status.

The model is the tiny random one (wiring, not accuracy); a near-zero threshold makes it fire.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import REPO, SpeechStream, make_speech_stream
from kwstream.assets import DEMO_AUDIO, MODEL_DIR

pytestmark = pytest.mark.slow  # every test runs `python -m kwstream`

FIRE = "0.01"


def kwstream(*args: str, input: bytes | None = None, timeout: float = 120, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "kwstream", *args], input=input, capture_output=True, timeout=timeout, env=env
    )


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("kwstream: error:")]
    assert len(error_lines) == 1, stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


def assert_failed_after_reporting(result: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit status 1: the input broke after some of it was heard; the summary, then one error line, last."""
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in stderr, stderr
    *_, summary, error = stderr.splitlines()
    assert "detection(s) in" in summary and error.startswith("kwstream: error: ") and fragment in error, stderr


@pytest.fixture(scope="module")
def talk(tmp_path_factory, speech_stream: SpeechStream) -> Path:
    return speech_stream.write(tmp_path_factory.mktemp("audio") / "talk.flac")


def test_json_lines_schema(tiny_model, talk):
    result = kwstream("listen", "--keywords", "hey,stop", "--file", str(talk), "--fast", "--json",
                      "--model", str(tiny_model), "--threshold", FIRE)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines
    before = time.time()
    for line in lines:
        record = json.loads(line)
        assert record["keyword"] in ("hey", "stop")
        for field in ("score", "start", "end", "detected_at", "wall_time", "latency"):
            assert isinstance(record[field], float), field
        assert 0 <= record["score"] <= 1
        assert record["start"] < record["end"] <= record["detected_at"]
        assert before - 120 < record["wall_time"] <= before
    assert "detection(s) in" in result.stderr.decode()


def test_human_output_and_per_keyword_threshold(tiny_model, talk):
    result = kwstream("listen", "--keywords", f"hey:{FIRE},stop:1.0", "--file", str(talk), "--fast",
                      "--model", str(tiny_model))
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines and all(" hey " in line and "score" in line for line in lines)


def test_stdin_raw_pcm(tiny_model, talk):
    pcm = soundfile.read(talk, dtype="int16")[0].tobytes()
    result = kwstream("listen", "--keywords", "stop", "--file", "-", "--fast", "--json",
                      "--model", str(tiny_model), "--threshold", FIRE, input=pcm)
    assert result.returncode == 0, result.stderr.decode()
    from_file = kwstream("listen", "--keywords", "stop", "--file", str(talk), "--fast", "--json",
                         "--model", str(tiny_model), "--threshold", FIRE)
    starts = lambda r: [json.loads(line)["start"] for line in r.stdout.decode().splitlines()]
    assert starts(result) == starts(from_file) and starts(result)


def test_missing_file(tiny_model, tmp_path):
    assert_user_error(kwstream("listen", "--keywords", "hey", "--file", str(tmp_path / "nope.wav"),
                               "--model", str(tiny_model)), "no such audio file")


def test_a_bad_input_is_reported_before_the_model_loads(tmp_path):
    # the model does not exist either: the first complaint must be the file's
    assert_user_error(kwstream("listen", "--keywords", "hey", "--file", str(tmp_path / "nope.wav"),
                               "--model", str(tmp_path / "no-model")), "no such audio file")


@pytest.mark.parametrize("option", ["--plot", "--calibrate"])
def test_eval_output_in_a_missing_folder_is_reported_before_the_model_loads(tmp_path, talk, option):
    labels = tmp_path / "labels.csv"
    labels.write_text("stream,keyword,start,end\n")
    out = tmp_path / "no-folder" / ("det.png" if option == "--plot" else "kwstream.json")
    assert_user_error(kwstream("eval", "--keywords", "hey", "--labels", str(labels), option, str(out),
                               "--model", str(tmp_path / "no-model"), str(talk)), f"{option} {out}: no such folder")


def test_a_mistyped_option_is_told_with_its_commands_usage():
    result = kwstream("listen", "--keywords", "hey", "--fiel", "x.wav")
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr
    assert stderr.startswith("usage: kwstream listen") and stderr.splitlines()[-1] == (
        "kwstream listen: error: unrecognized arguments: --fiel x.wav")


def test_corrupt_file(tiny_model, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(2000))
    assert_user_error(kwstream("listen", "--keywords", "hey", "--file", str(bad), "--model", str(tiny_model)),
                      "cannot read", "bad.wav")


def test_model_directory_missing(tmp_path, talk):
    assert_user_error(kwstream("listen", "--keywords", "hey", "--file", str(talk), "--model", str(tmp_path / "m")),
                      "not a model directory")


def test_unreachable_hub_model_fails_fast(talk, tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf")}  # an empty cache
    started = time.monotonic()
    result = kwstream("listen", "--keywords", "hey", "--file", str(talk), "--model", "someone/not-a-cached-model", env=env)
    assert time.monotonic() - started < 30
    assert_user_error(result, "someone/not-a-cached-model")
    assert "--model PATH" in result.stderr.decode() or "cannot load" in result.stderr.decode()


def test_auto_model_offline_without_bundled_model_says_what_to_do(talk, tmp_path, monkeypatch):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    from kwstream.model.resolve import BUNDLED_MODEL_DIR

    result = kwstream("listen", "--keywords", "hey", "--file", str(talk), env=env)
    if (BUNDLED_MODEL_DIR / "config.json").is_file():
        assert result.returncode == 0, result.stderr.decode()
        assert "using the bundled model" in result.stderr.decode()
    else:
        assert_user_error(result, "no model available offline", "--model PATH")


@pytest.mark.parametrize(
    ("keywords", "message"),
    [("café,stop", "cannot spell"), (",", "no keywords"), ("stop,STOP", "duplicate"), ("hey:2", "must be in [0, 1]"), ("stop:0.5:0.6", "one threshold")],
)
def test_bad_keywords(tiny_model, talk, keywords, message):
    assert_user_error(kwstream("listen", "--keywords", keywords, "--file", str(talk), "--model", str(tiny_model)), message)


def test_fast_needs_a_file(tiny_model):
    assert_user_error(kwstream("listen", "--keywords", "hey", "--fast", "--model", str(tiny_model)), "--fast needs --file")


def test_window_shorter_than_hop(tiny_model, talk):
    assert_user_error(kwstream("listen", "--keywords", "hey", "--file", str(talk), "--model", str(tiny_model),
                               "--window-ms", "200", "--hop-ms", "300"), "hop")


def test_a_window_longer_than_the_ring_names_the_option(tiny_model, talk):
    assert_user_error(kwstream("listen", "--keywords", "hey", "--file", str(talk), "--model", str(tiny_model),
                               "--window-ms", "99999999"), "--window-ms")


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_ctrl_c_and_sigterm_stop_cleanly_and_keep_detections(tiny_model, tmp_path, stop, status):
    """Ctrl-C is an interruption (130); SIGTERM (systemd, ``timeout``) asks the listener to end, as ``serve`` ends (0):
    its default action ended the process without a summary (143)."""
    long_talk = make_speech_stream(["3_theo_0", "7_jackson_0"] * 6).write(tmp_path / "long.wav")
    process = subprocess.Popen(
        [sys.executable, "-m", "kwstream", "listen", "--keywords", "stop", "--file", str(long_talk), "--json",
         "--model", str(tiny_model), "--threshold", FIRE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    first = process.stdout.readline()  # real-time replay: the first word's detection
    assert json.loads(first)["keyword"] == "stop"
    process.send_signal(stop)
    rest, stderr = process.communicate(timeout=30)
    assert process.returncode == status, stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert "detection(s) in" in stderr.decode()
    for line in rest.decode().splitlines():
        json.loads(line)


def test_json_events_stream_everything_in_order(tiny_model, talk):
    result = kwstream("listen", "--keywords", "stop", "--file", str(talk), "--fast", "--json", "--events",
                      "--model", str(tiny_model), "--threshold", FIRE)
    assert result.returncode == 0, result.stderr.decode()
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    types = [r["type"] for r in records]
    assert set(types) == {"level", "voice", "window", "detection"}
    voice = [r["voiced"] for r in records if r["type"] == "voice"]
    assert voice == [True, False] * (len(voice) // 2) and voice
    levels = [r["time_s"] for r in records if r["type"] == "level"]
    assert levels == sorted(levels) and levels[-1] > 5
    windows = [r for r in records if r["type"] == "window"]
    assert all(set(w["scores"]) == {"stop"} and len(w["alignments"]["stop"]) == 2 for w in windows)


def test_events_need_json(tiny_model, talk):
    assert_user_error(kwstream("listen", "--keywords", "stop", "--file", str(talk), "--events", "--model", str(tiny_model)),
                      "--events needs --json")


def test_keyword_with_a_common_homophone_is_warned_about(tiny_model, talk):
    result = kwstream("listen", "--keywords", "two,stop", "--file", str(talk), "--fast", "--model", str(tiny_model))
    assert result.returncode == 0, result.stderr.decode()
    warnings = [line for line in result.stderr.decode().splitlines() if "sounds like" in line]
    assert len(warnings) == 1 and warnings[0].startswith('kwstream: "two" sounds like "to" and "too"'), warnings


def demo_listen(*args: str, input: bytes | None = None):
    """``kwstream listen`` for hey and stop with the bundled model (its ONNX export: quick to load)."""
    return kwstream("listen", "--keywords", "hey,stop", "--model", str(MODEL_DIR), "--fast", *args, input=input)


@pytest.mark.parametrize("subtype", ["FLAC", "WAV", "OGG"])
def test_a_recording_piped_to_stdin_is_decoded_not_read_as_raw_samples(tmp_path, subtype):
    audio, rate = soundfile.read(DEMO_AUDIO)
    recording = tmp_path / f"demo.{subtype.lower()}"
    soundfile.write(recording, audio, rate, format=subtype)
    result = demo_listen("--file", "-", input=recording.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert [line.split()[1] for line in result.stdout.decode().splitlines()] == ["hey", "stop"], result.stderr.decode()


def test_a_recording_that_breaks_part_way_is_a_failure_told_once(tmp_path):
    broken = tmp_path / "t.flac"
    broken.write_bytes(DEMO_AUDIO.read_bytes()[:30000])
    result = demo_listen("--file", str(broken))
    assert_failed_after_reporting(result, "t.flac: read error after")
    assert result.stderr.decode().count("read error") == 1, result.stderr.decode()
    assert result.stdout.decode().split()[1] == "hey"  # what came before the break is heard


def test_every_command_words_a_missing_file_and_a_directory_alike(tmp_path):
    store = ["--store", str(tmp_path / "store")]
    missing = str(tmp_path / "missing.wav")
    for result in (demo_listen("--file", missing), kwstream("enroll", "x", "--from", missing, "b", "c", *store)):
        assert_user_error(result, f"no such audio file: {missing}")
        assert "System error" not in result.stderr.decode()
    for result in (demo_listen("--file", str(tmp_path)), kwstream("enroll", "x", "--from", str(tmp_path), "b", "c", *store)):
        assert_user_error(result, f"{tmp_path} is a directory, not an audio file")


def test_an_unspellable_keyword_names_what_the_model_spells():
    result = kwstream("listen", "--keywords", "hey€", "--file", str(DEMO_AUDIO), "--fast", "--model", str(MODEL_DIR))
    assert_user_error(result, "'€'", "(it spells with the letters ABCDEFGHIJKLMNOPQRSTUVWXYZ and \"'\")")


def test_threads_default_is_the_same_in_help_and_usage_doc():
    assert "(default: one per physical core" in " ".join(kwstream("listen", "--help").stdout.decode().split())
    assert "| `--threads` | one per physical core it may run on (`taskset` is kept) |" in (REPO / "docs" / "usage.md").read_text()


@pytest.mark.parametrize("suffix", [".raw", ".pcm", ".snd"])
def test_headerless_pcm_is_refused_in_one_line_by_listen_and_eval_and_reads_from_stdin(tmp_path, suffix):
    raw = tmp_path / f"demo{suffix}"
    raw.write_bytes(soundfile.read(DEMO_AUDIO, dtype="int16")[0].tobytes())  # starts 0xFFFF: libsndfile saw MPEG
    labels = tmp_path / "labels.csv"
    labels.write_text("stream,keyword,start,end\n")
    hint = f"raw 16 kHz mono s16le PCM can be read from stdin: kwstream listen --file - < {raw}"
    assert_user_error(demo_listen("--file", str(raw)), f"cannot read {raw} as audio: ", hint)
    assert_user_error(kwstream("eval", "--keywords", "hey", "--labels", str(labels), str(raw)), hint)
    piped = demo_listen("--file", "-", input=raw.read_bytes())
    assert piped.returncode == 0 and [line.split()[1] for line in piped.stdout.decode().splitlines()] == ["hey", "stop"]


def test_a_truncated_wav_fails_after_its_detections_and_an_unsized_one_does_not(tmp_path):
    whole, cut, unsized = tmp_path / "whole.wav", tmp_path / "cut.wav", tmp_path / "unsized.wav"
    audio, rate = soundfile.read(DEMO_AUDIO)
    soundfile.write(whole, audio, rate, subtype="PCM_16")
    cut.write_bytes(whole.read_bytes()[:200000])
    data = bytearray(whole.read_bytes())
    size_at = data.index(b"data") + 4
    data[size_at:size_at + 4] = (0x80000000).to_bytes(4, "little")  # what arecord leaves when it cannot seek back
    unsized.write_bytes(data)
    result = demo_listen("--file", str(cut))
    assert_failed_after_reporting(result, f"{cut}: truncated: header says 11.35 s, file holds 6.25 s")
    assert [line.split()[1] for line in result.stdout.decode().splitlines()] == ["hey"]
    streamed = demo_listen("--file", str(unsized))
    assert streamed.returncode == 0 and "error" not in streamed.stderr.decode(), streamed.stderr.decode()
    labels = tmp_path / "labels.csv"
    labels.write_text("stream,keyword,start,end\ncut,hey,0.83,1.11\n")
    evaluated = kwstream("eval", "--keywords", "hey", "--labels", str(labels), str(cut))  # the report, then exit 1
    assert evaluated.returncode == 1 and "truncated: header says 11.35 s" in evaluated.stderr.decode(), evaluated.stderr.decode()


def test_a_float_file_with_infinities_and_overs_is_heard_in_full_scale_without_numpy_warnings(tmp_path):
    audio, rate = soundfile.read(DEMO_AUDIO, dtype="float32")
    audio[8000:8100] = 1e30  # in the quiet before "hey"
    audio[8100] = np.nan
    audio[9000] = np.inf
    spoilt = tmp_path / "spoilt.wav"
    soundfile.write(spoilt, audio, rate, subtype="FLOAT")
    result = demo_listen("--file", str(spoilt), "--json", "--events")
    stderr = result.stderr.decode()
    assert result.returncode == 0 and "RuntimeWarning" not in stderr, stderr
    assert f"kwstream: NaN or infinite samples at 0.51 s of {spoilt}: heard as silence" in stderr.splitlines()
    events = [json.loads(line) for line in result.stdout.decode().splitlines()]
    levels = [e for e in events if e["type"] == "level"]
    assert levels and max(max(e["rms_dbfs"], e["peak_dbfs"]) for e in levels) <= 0.0
    assert [e["keyword"] for e in events if e["type"] == "detection"] == ["hey", "stop"]
