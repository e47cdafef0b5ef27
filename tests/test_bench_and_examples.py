"""`kwstream bench` end to end on a short run, and the example scripts as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, SpeechStream
from kwstream.assets import DEMO_AUDIO
from kwstream.audio.io import SAMPLE_RATE
from kwstream.evaluation.bench import speech_stream
from kwstream.model.resolve import BUNDLED_MODEL_DIR


@pytest.mark.slow
def test_bench_json_reports_speech_and_silence():
    result = subprocess.run(
        [sys.executable, "-m", "kwstream", "bench", "--random", "tiny", "--seconds", "4", "--repeats", "2", "--json"],
        capture_output=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    speech, silence = report["results"]
    assert (speech["stream"], silence["stream"]) == ("speech", "silence")
    assert speech["windows"] > 0 and speech["cpu_per_audio_s"] > 0 and speech["window_ms"] > 0
    assert 1.0 <= speech["encoded_per_audio_s"] <= 4.2  # each voiced second about once, plus context: not 6 windows
    assert speech["words"] == 2 * len(speech_stream(4.0)[1]) and speech["peak_memory_mb"] > 0
    assert silence["windows"] == 0 and silence["encoded_per_audio_s"] == 0  # the VAD keeps silence from the encoder
    startup = report["startup"]  # new `kwstream listen` processes, from launch to listening
    assert 0 < startup["wall_s"] and 0 < startup["cpu_s"] and startup["peak_memory_mb"] > 0


@pytest.mark.slow
def test_bench_table_keeps_every_figure_whole_in_80_columns():
    result = subprocess.run(
        [sys.executable, "-m", "kwstream", "bench", "--random", "tiny", "--seconds", "4", "--repeats", "1"],
        capture_output=True, timeout=300, env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr.decode()
    table = result.stdout.decode()
    assert "…" not in table and max(map(len, table.splitlines())) <= 80, table
    assert re.search(r"┃ +┃ speech ┃ silence ┃", table), table
    assert re.search(r"│ real-time factor +│ +\d+\.\d{4} │ +\d+\.\d{4} │", table), table
    for label in ("CPU s per audio s", "ms per window", "keywords found", "latency median s", "peak memory MB"):
        assert re.search(rf"│ {label} +│ +[-\d./]+ │ +[-\d./]+ │", table), (label, table)


def test_bench_scores_detections_against_the_spoken_words():
    from kwstream.evaluation.bench import SpokenWord, outcome
    from kwstream.stream.detector import Detection

    words = [SpokenWord("seven", 1.0, 1.5), SpokenWord("three", 2.0, 2.4), SpokenWord("seven", 3.0, 3.6)]
    found = [Detection("seven", 0.9, 1.1, 1.5, 1.7, 0.0), Detection("seven", 0.9, 1.1, 1.5, 1.9, 0.0),  # one word, twice
             Detection("three", 0.9, 3.0, 3.5, 3.8, 0.0), Detection("seven", 0.9, 3.1, 3.6, 3.9, 0.0)]  # a miss, a hit
    scored = outcome(found, words)
    assert sorted(scored.latencies) == pytest.approx([0.2, 0.3])
    assert (scored.hits, scored.labels, scored.false_alarms) == (2, 3, 2)


@pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="needs the bundled model")
@pytest.mark.slow
def test_choose_model_example_spots_its_own_keywords_with_the_model_it_is_given():
    """The example's keywords ("hey" at 0.5, "stop" at the example's 0.6) in the demo: each fires once, where it is said."""
    result = subprocess.run([sys.executable, str(REPO / "examples" / "choose_model.py"), str(BUNDLED_MODEL_DIR), str(DEMO_AUDIO)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    found = re.findall(r"Detection\(keyword='([a-z ]+)', score=[0-9.]+, start=([0-9.]+), end=([0-9.]+)", result.stdout)
    assert [keyword for keyword, _, _ in found] == ["hey", "stop"], result.stdout
    (_, _, hey_end), (_, stop_start, _) = found
    assert float(hey_end) < 1.5 and float(stop_start) > 9.0, result.stdout


@pytest.mark.slow
def test_choose_model_example_tells_an_unreachable_model_in_one_line(tmp_path):
    """A hub id offline and not cached: the library's error, worded for a script as well as the command line."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}  # an empty cache
    result = subprocess.run([sys.executable, str(REPO / "examples" / "choose_model.py"), "someone/not-a-cached-model", str(DEMO_AUDIO)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("choose_model: model 'someone/not-a-cached-model'") and "pass its directory instead" in line, line


@pytest.mark.slow
@pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="needs the bundled model")
def test_spot_in_file_example(speech_stream: SpeechStream, tmp_path):
    path = speech_stream.write(tmp_path / "talk.wav")
    result = subprocess.run([sys.executable, str(REPO / "examples" / "spot_in_file.py"), str(path), "three", "seven"],
                            capture_output=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr.decode()
    assert "real-time factor" in result.stdout.decode()


STARTUP_UNDER_A_BIG_PARENT = """
import sys
parent = bytearray(600 * 2**20)
parent[::4096] = b"x" * len(parent[::4096])  # resident, not just reserved
from kwstream.evaluation.bench import startup
print(startup(sys.argv[1], "auto", 1).peak_memory_mb)
"""


@pytest.mark.slow
@pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="needs the bundled model")
def test_startup_memory_is_the_listeners_own_not_its_parents():
    # a parent of 600 MB: RUSAGE_CHILDREN (and the child's own ru_maxrss) would report at least that
    run = subprocess.run([sys.executable, "-c", STARTUP_UNDER_A_BIG_PARENT, str(BUNDLED_MODEL_DIR)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert 20 < float(run.stdout) < 500


def test_bench_table_title_is_never_broken_inside_a_word(monkeypatch, capsys):
    from kwstream.cli.tables import print_table

    monkeypatch.setenv("COLUMNS", "80")
    title = "/home/someone/models/kwstream/assets/model (3.9 M parameters, cpu), medians of 3"
    print_table(title, ["", "speech"], [["audio s", "30"]], "a caption")
    assert title in capsys.readouterr().out


def test_serve_bench_streams_exactly_the_seconds_asked_for():
    from kwstream.evaluation.serve_load import demo_stream

    pcm, ends = demo_stream(12.0)
    assert len(pcm) == 12 * 16000 * 2
    assert [word for word, _ in ends] == ["hey", "stop"] and all(end <= 12.0 for _, end in ends)


@pytest.mark.slow
@pytest.mark.parametrize("example", ["spot_in_file.py", "choose_model.py"])
def test_an_example_without_its_arguments_says_how_to_run_it(example):
    result = subprocess.run([sys.executable, str(REPO / "examples" / example)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.startswith("usage: ") and "Traceback" not in result.stderr, result.stderr


@pytest.mark.slow
def test_bench_measures_the_keywords_a_user_enrolled(tiny_model, tmp_path):
    """``bench --enrolled NAME --store DIR`` costs an enrolled keyword (here a voice keyword, the dearest kind: the
    stream computes the speech embedding too), alone: the spoken digits are the default keywords only without one."""
    from kwstream.keywords.enrolled.scorer import VOICE, VOICE_COLUMNS, letter_count
    from kwstream.keywords.enrolled.store import EnrolledKeyword, KeywordStore
    from kwstream.model.encoder import Encoder, EncoderSettings

    encoder = Encoder(EncoderSettings(model=str(tiny_model)))
    hidden = encoder.encode(np.zeros(SAMPLE_RATE, np.float32), (1,)).features[1].shape[1]
    rng = np.random.default_rng(0)
    examples = [rng.standard_normal((n, letter_count(encoder) + hidden + VOICE_COLUMNS)).astype(np.float32) for n in (20, 24, 22)]
    KeywordStore(tmp_path).save(EnrolledKeyword("mine", 1, 0.5, encoder.fingerprint, str(tiny_model), examples, kind=VOICE,
                                                centre=np.zeros(hidden, np.float32), scale=(1.0, 1.0)))
    result = subprocess.run([sys.executable, "-m", "kwstream", "bench", "--model", str(tiny_model),
                             "--enrolled", "mine", "--store", str(tmp_path), "--seconds", "4", "--repeats", "1", "--json"],
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    speech = report["results"][0]
    assert report["keywords"] == ["mine"] and speech["windows"] > 0 and speech["cpu_per_audio_s"] > 0
    assert speech["words"] == 0  # the bench's spoken digits are not this keyword: no latency to measure


def test_bench_serve_refuses_keywords_it_would_not_time():
    """``--serve`` load-tests the server's own keywords; keywords named beside it would be silently left out."""
    result = subprocess.run([sys.executable, "-m", "kwstream", "bench", "--serve", "1", "--enrolled", "mine"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "--serve" in result.stderr, result.stderr


@pytest.mark.parametrize(("args", "message"), [(["--seconds", "1e7"], "at most 3600"), (["--workers", "2"], "with --serve")])
def test_bench_refuses_what_it_cannot_do_in_one_line(args, message):
    """A stream of 10^7 s grew the process by 65 MB a second; --workers without --serve was silently ignored."""
    result = subprocess.run([sys.executable, "-m", "kwstream", "bench", "--random", "tiny", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
