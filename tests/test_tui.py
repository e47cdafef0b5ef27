"""The dashboard: rendering recorded events, keys, fallback, and the real CLI driven under tmux."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from conftest import REPO, make_speech_stream
from kwstream.stream.detector import Detection, WindowScore
from kwstream.stream.events import Level, ScoredWindow, VoiceActivity
from kwstream.spotter import SpotterSettings, SpotterStats
from kwstream.cli.dashboard import (
    BAR_CELLS,
    MIN_COLS,
    Controls,
    DashboardState,
    Key,
    Setup,
    keywords_option,
    parse_keys,
    render,
)

LEVEL_BLOCK_S = SpotterSettings.level_block_ms / 1000
WALL = 1_700_000_000.0
SETUP = Setup("test mic", 48000, "tiny", "cpu")
BAR = re.compile(rf"[█░|]{{{BAR_CELLS}}}")
FIRE = "0.01"
TMUX_COLS, TMUX_ROWS = 120, 40
TMUX_TIMEOUT_S = 60
POLL_S = 0.2


def levels(start_s: float, stop_s: float, peak_dbfs: float = -12.0) -> list[Level]:
    """Level events every 50 ms over (start, stop], like the spotter's meter."""
    count = round((stop_s - start_s) / LEVEL_BLOCK_S)
    return [Level(round(start_s + (i + 1) * LEVEL_BLOCK_S, 3), -30.0, peak_dbfs, False) for i in range(count)]


def recorded_events() -> list[object]:
    """Three seconds: a clipped block at 2.0 s, speech from 1.0 to 2.5 s, six windows, two detections."""
    events: list[object] = [*levels(0.0, 1.0), VoiceActivity(1.0, True), *levels(1.0, 1.95)]
    events.append(Level(2.0, -6.0, -0.5, True))
    for i in range(6):
        end = 1.5 + 0.25 * i
        scores = {"hey": 0.1 + 0.064 * i, "stop": 0.8}
        events.append(ScoredWindow(end - 1.5, end, {k: WindowScore(k, s, end - 1, end - 0.5) for k, s in scores.items()}, 0.004))
    events += [
        Detection("stop", 0.81, 1.0, 1.4, 1.7, WALL),  # latency 0.30 s
        Detection("hey", 0.55, 2.0, 2.25, 2.75, WALL + 1),  # latency 0.50 s
        VoiceActivity(2.5, False),
        *levels(2.0, 3.0),
    ]
    return events


def screen(state: DashboardState, controls: Controls, stats: SpotterStats | None = None, width: int = 100, height: int = 30) -> str:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(render(state, SETUP, controls, stats or SpotterStats()))
    return console.export_text()


def line_with(text: str, *fragments: str) -> str:
    matches = [line for line in text.splitlines() if all(f in line for f in fragments)]
    assert len(matches) == 1, f"{fragments} in:\n{text}"
    return matches[0]


@pytest.fixture
def state() -> DashboardState:
    state = DashboardState(["hey", "stop"])
    for event in recorded_events():
        state.apply(event)
    return state


def test_render_recorded_events(state):
    controls = Controls({"hey": 0.5, "stop": 0.25}, selected=1)
    stats = SpotterStats(audio_s=3.0, voiced_s=1.5, compute_s=0.024, dropped_frames=2, overrun_samples=8000)
    text = screen(state, controls, stats)

    hey, stop = line_with(text, " hey ", "█"), line_with(text, " stop ", "█")
    assert "0.42" in hey and "0.80" in stop  # the newest window's scores
    assert BAR.search(hey)[0] == "████████░░|░░░░░░░░░"  # 0.42 of 20 cells, threshold 0.50 in cell 10
    assert BAR.search(stop)[0] == "█████|██████████░░░░"  # 0.80 of 20 cells, threshold 0.25 in cell 5
    assert "▇" in stop and "▁" in hey  # sparklines: 0.8 high, 0.1 low
    assert stop.rstrip(" │").split()[-1] == "1" and hey.rstrip(" │").split()[-1] == "1"  # detection counts
    assert "▶" in stop and "▶" not in hey  # the selected keyword

    stop_row = line_with(text, "00:01.70", "stop")
    assert "0.81" in stop_row and "0.30 s" in stop_row and time.strftime("%H:%M:%S", time.localtime(WALL)) in stop_row
    hey_row = line_with(text, "00:02.75", "hey")
    assert "0.55" in hey_row and "0.50 s" in hey_row
    assert text.index("00:02.75") < text.index("00:01.70")  # newest first

    assert "RTF 0.008" in text
    assert "window 4.0 ms" in text
    assert "latency med 0.40 s  p95 0.49 s" in text
    assert "CLIP!" in text and "peak hold -0.5" in text
    assert "voiced 50% of 3.0 s" in text and "○ silent" in text
    assert "48000 Hz" in text and "dropped frames 2" in text and "overrun 0.50 s" in text
    assert "test mic" in text and "tiny on cpu" in text
    assert "LIVE" in text and "PAUSED" not in text


def test_peak_hold_and_clip_warning_expire(state):
    for event in levels(3.0, 4.5):
        state.apply(event)
    text = screen(state, Controls({"hey": 0.5, "stop": 0.5}))
    assert "peak hold -12.0" in text and "CLIP!" not in text
    assert "0.00  " in line_with(text, " stop ", "░")  # no window scored for a second


def test_paused_ended_and_small_terminal(state):
    controls = Controls({"hey": 0.5, "stop": 0.5}, paused=True, ended=True)
    text = screen(state, controls)
    assert "PAUSED" in text and "ENDED" in text
    assert "terminal too small" in screen(state, controls, width=MIN_COLS - 1)
    assert "terminal too small" in screen(state, controls, height=19)
    assert "terminal too small" not in screen(state, controls, width=MIN_COLS, height=20)


def test_keys_and_keywords_option():
    assert parse_keys(b"q") == [Key.QUIT]
    assert parse_keys(b"\x1b[A\x1b[B\t\x1b[Z+-=x\x1b[C") == [
        Key.PREVIOUS, Key.NEXT, Key.NEXT, Key.PREVIOUS, Key.RAISE, Key.LOWER, Key.RAISE,
    ]
    assert keywords_option({"hey": 0.55, "stop": 0.5}) == "--keywords hey:0.55,stop:0.50"
    assert keywords_option({"hey computer": 0.5}) == "--keywords 'hey computer:0.50'"


def kwstream(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kwstream", *args], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> Path:
    return make_speech_stream(["3_theo_0", "7_jackson_0", "0_lucas_1"]).write(tmp_path_factory.mktemp("tui") / "talk.wav")


@pytest.mark.slow
def test_piped_stdout_falls_back_to_lines(tiny_model, talk):
    result = kwstream("listen", "--keywords", "stop", "--dashboard", "--file", str(talk), "--fast",
                      "--model", str(tiny_model), "--threshold", FIRE)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "no dashboard: stdout is not a terminal" in stderr
    lines = result.stdout.decode().splitlines()
    assert lines and all(" stop " in line and "latency" in line for line in lines)


@pytest.mark.slow
def test_dashboard_with_json_is_a_usage_error(talk):
    result = kwstream("listen", "--keywords", "stop", "--dashboard", "--json", "--file", str(talk))
    stderr = result.stderr.decode()
    assert result.returncode == 2
    assert [line for line in stderr.splitlines() if line] == [
        "kwstream: error: --dashboard and --json cannot be combined: choose the live view or JSON lines"
    ]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("ended_by", ["keys", "sigterm"])
def test_dashboard_under_tmux(tiny_model, talk, tmp_path, ended_by):
    """Driven with its keys, or ended by SIGTERM (systemd, ``kill``) while it waits for ``q``: it kept running before."""
    socket = f"kwstream-test-{uuid.uuid4().hex[:8]}"
    tmux = lambda *args: subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=10)
    exit_file = tmp_path / "exit"
    command = (
        f"cd {REPO} && {sys.executable} -m kwstream listen --keywords stop,seven --dashboard --file {talk} "
        f"--model {tiny_model} --threshold {FIRE}; echo EXIT=$? > {exit_file}"
    )
    capture = lambda: tmux("capture-pane", "-p", "-S", "-").stdout

    def wait_for(pattern: str) -> str:
        deadline = time.monotonic() + TMUX_TIMEOUT_S
        while time.monotonic() < deadline:
            if re.search(pattern, text := capture()):
                return text
            time.sleep(POLL_S)
        raise AssertionError(f"{pattern!r} not on the screen:\n{text}")

    try:
        started = tmux("new-session", "-d", "-x", str(TMUX_COLS), "-y", str(TMUX_ROWS), command, ";",
                       "set-option", "-w", "remain-on-exit", "on")
        assert started.returncode == 0, started.stderr
        wait_for(r"\d\d:\d\d:\d\d +\d\d:\d\d\.\d\d +stop +\d\.\d\d +\d\.\d\d s")  # a detection in the log
        if ended_by == "sigterm":
            shell = tmux("display-message", "-p", "#{pane_pid}").stdout.strip()
            [listener] = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True).stdout.split()
            os.kill(int(listener), signal.SIGTERM)
            text = wait_for(r"--keywords stop:0\.01,seven:0\.01")
        else:
            tmux("send-keys", "p")
            wait_for("PAUSED")
            tmux("send-keys", "+")
            wait_for(rf"▶ +stop +\d\.\d\d +[█░|]{{{BAR_CELLS}}} +0\.06 ")  # 0.01 + 0.05
            tmux("send-keys", "q")
            text = wait_for(r"--keywords stop:0\.06,seven:0\.01")
        deadline = time.monotonic() + TMUX_TIMEOUT_S
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        assert exit_file.read_text().strip() == "EXIT=0", text
    finally:
        tmux("kill-server")
