"""The virtual microphone, used the way the CLI will use it: PortAudio in a subprocess."""

from __future__ import annotations

import ctypes.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from virtual_mic import SAMPLE_RATE, no_input_env, virtual_mic_env

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    ctypes.util.find_library("portaudio") is None,
    reason="libportaudio2 is not installed (see .ci/apt-packages.txt)",
)]

TONE_HZ = 440.0
BURST_S = (0.4, 1.0)  # a loud tone between quiet (digital silence) stretches
AUDIO_S = 1.2
RECORD_S = 1.5  # past the recording's end, to see what follows it

RECORD = """
import json, sys, time
import numpy as np, sounddevice as sd
rate, dtype, channels, seconds, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
blocks, times = [], []
def callback(indata, frames, time_info, status):
    blocks.append(indata.copy())
    times.append(time.monotonic())
with sd.InputStream(samplerate=rate, dtype=dtype, channels=channels, callback=callback):
    time.sleep(seconds)
np.save(out, np.concatenate(blocks))
json.dump({"first_block": len(blocks[0]), "first_time": times[0], "last_time": times[-1]}, sys.stdout)
"""

DEVICES = """
import json, sounddevice as sd
json.dump({"devices": [dict(d) for d in sd.query_devices()], "default": list(sd.default.device)}, __import__("sys").stdout)
"""

NO_DEVICE = """
import json, sys, sounddevice as sd
result = {"devices": len(sd.query_devices()), "default": list(sd.default.device)}
try:
    sd.InputStream(samplerate=16000, channels=1, dtype="float32")
except Exception as exc:
    result["error"] = [type(exc).__name__, str(exc)]
json.dump(result, sys.stdout)
"""

REINIT = """
import json, os, sys, sounddevice as sd
before = [d["name"] for d in sd.query_devices()]
sd._terminate()
os.environ["HOME"] = sys.argv[1]
sd._initialize()
json.dump({"before": before, "after": [d["name"] for d in sd.query_devices()]}, sys.stdout)
"""


def run_python(env: dict[str, str], script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def tone_burst() -> np.ndarray:
    t = np.arange(int(AUDIO_S * SAMPLE_RATE)) / SAMPLE_RATE
    loud = (t >= BURST_S[0]) & (t < BURST_S[1])
    return np.where(loud, 0.5 * 32767 * np.sin(2 * np.pi * TONE_HZ * t), 0).astype(np.int16)


@pytest.mark.parametrize(
    ("rate", "dtype", "channels"),
    [(16000, "int16", 1), (16000, "float32", 1), (44100, "float32", 1), (48000, "int16", 2)],
)
def test_recording_arrives_intact_in_real_time(tmp_path: Path, rate: int, dtype: str, channels: int) -> None:
    audio = tone_burst()
    out = tmp_path / "recorded.npy"
    timing = run_python(
        virtual_mic_env(tmp_path, audio), RECORD, str(rate), dtype, str(channels), str(RECORD_S), str(out)
    )
    recorded = np.load(out)
    assert recorded.shape[1] == channels and (recorded == recorded[:, :1]).all()
    assert len(recorded) >= (RECORD_S - 0.2) * rate
    signal = recorded[:, 0].astype(np.float64) / (32768.0 if dtype == "int16" else 1.0)

    if (rate, dtype) == (SAMPLE_RATE, "int16"):
        np.testing.assert_array_equal(recorded[: len(audio), 0], audio)
    loud = np.flatnonzero(np.abs(signal) > 0.05)
    assert loud[0] / rate == pytest.approx(BURST_S[0], abs=0.005)
    assert loud[-1] / rate == pytest.approx(BURST_S[1], abs=0.005)
    assert not signal[: int((BURST_S[0] - 0.005) * rate)].any()
    assert not signal[int((BURST_S[1] + 0.005) * rate) :].any(), "after the burst and past the end: exact zeros"

    burst = signal[loud[0] : loud[-1]]
    spectrum = np.abs(np.fft.rfft(burst * np.hanning(len(burst))))
    assert np.argmax(spectrum) * rate / len(burst) == pytest.approx(TONE_HZ, abs=2.0)
    assert np.sqrt(np.mean(burst**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)

    delivered = len(recorded) - timing["first_block"]
    assert delivered / (timing["last_time"] - timing["first_time"]) == pytest.approx(rate, rel=0.05)


def test_devices_show_the_virtual_mic(tmp_path: Path) -> None:
    listing = run_python(virtual_mic_env(tmp_path, tone_burst(), name="kwstream_test_mic"), DEVICES)
    by_name = {d["name"]: d for d in listing["devices"]}
    assert {"kwstream_test_mic", "default"} <= by_name.keys()
    default_input = listing["devices"][listing["default"][0]]
    assert default_input["name"] == "default"
    for device in (by_name["kwstream_test_mic"], default_input):
        assert device["hostapi"] == 0 and device["max_input_channels"] >= 1
        assert device["default_samplerate"] > 0


@pytest.mark.skipif(Path("/dev/snd").exists(), reason="a sound card is present, so there are real input devices")
def test_without_config_there_is_no_input_device(tmp_path: Path) -> None:
    result = run_python(no_input_env(tmp_path), NO_DEVICE)
    assert result == {"devices": 0, "default": [-1, -1], "error": ["PortAudioError", "Error querying device -1"]}


def test_portaudio_reinitialises_in_process_with_a_new_home(tmp_path: Path) -> None:
    mic_home = tmp_path / "mic"
    mic_home.mkdir()
    virtual_mic_env(mic_home, tone_burst())
    result = run_python(no_input_env(tmp_path), REINIT, str(mic_home))
    assert "vfile" not in result["before"]
    assert {"vfile", "default"} <= set(result["after"])
