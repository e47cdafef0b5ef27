"""The microphone path for real: PortAudio capturing from a virtual ALSA microphone that plays a
recording (tests/virtual_mic.py), through the whole pipeline, as `kwstream listen` runs it.

The model is the tiny random one: these tests check capture, timing and the CLI around devices,
not which words are found.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import SAMPLE_RATE, SpeechStream
from kwstream.cli.exit_codes import EXIT_FAILED
from kwstream.stream.vad import VadSettings
from virtual_mic import no_input_env, stalled_mic_env, virtual_mic_env

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True).returncode != 0,
    reason="PortAudio (Debian: libportaudio2) is not installed",
)]


def pcm16(stream: SpeechStream) -> np.ndarray:
    return (np.clip(stream.audio, -1, 1) * 32767).astype(np.int16)


def kwstream(*args: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kwstream", *args], capture_output=True, timeout=timeout, env=env)


def test_devices_lists_the_virtual_microphone(tmp_path, speech_stream):
    result = kwstream("devices", env=virtual_mic_env(tmp_path, pcm16(speech_stream)))
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert any(" vfile " in line for line in lines)
    assert any(line.startswith("*") and "default" in line for line in lines)


def test_no_input_device_is_a_clear_error(tmp_path, tiny_model):
    env = no_input_env(tmp_path)
    listen = kwstream("listen", "--keywords", "stop", "--model", str(tiny_model), env=env)
    assert listen.returncode == 2 and "Traceback" not in listen.stderr.decode()
    assert "no input device found" in listen.stderr.decode() and "--file" in listen.stderr.decode()
    devices = kwstream("devices", env=env)
    assert devices.returncode == 2 and "no input devices found" in devices.stderr.decode()


def test_unknown_device_is_a_clear_error(tmp_path, tiny_model, speech_stream):
    env = virtual_mic_env(tmp_path, pcm16(speech_stream))
    result = kwstream("listen", "--keywords", "stop", "--model", str(tiny_model), "--input-device", "no-such-mic", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr.decode()
    assert "unknown input device 'no-such-mic'" in result.stderr.decode()


@pytest.mark.parametrize("device", [None, "vfile", "0"])
def test_microphone_through_the_whole_pipeline(tmp_path, tiny_model, speech_stream: SpeechStream, device):
    env = virtual_mic_env(tmp_path, pcm16(speech_stream))
    args = [sys.executable, "-m", "kwstream", "listen", "--keywords", "stop", "--json", "--model", str(tiny_model),
            "--threshold", "0.01"] + (["--input-device", device] if device else [])
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    detections = []
    deadline = time.monotonic() + 60
    last_word_end = speech_stream.word_spans[-1][1] / SAMPLE_RATE
    try:
        while time.monotonic() < deadline:  # one detection per word span, then the line after the last
            line = process.stdout.readline()
            if not line:
                break
            detections.append(json.loads(line))
            if detections[-1]["end"] > last_word_end - 0.5:
                break
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()
    assert "Traceback" not in stderr.decode()
    vad = VadSettings()
    margin = (vad.preroll_ms + vad.hangover_ms) / 1000 + 0.2
    spans = [(a / SAMPLE_RATE - margin, b / SAMPLE_RATE + margin) for a, b in speech_stream.word_spans]
    for span in spans:  # every word heard, at its time in the recording, through PortAudio's clock
        assert any(span[0] <= d["start"] < d["end"] <= span[1] for d in detections), (span, detections)
    for d in detections:
        assert d["latency"] >= 0
    assert "overrun" not in stderr.decode() and "overflow" not in stderr.decode()


def test_a_device_opened_at_48_khz_is_resampled_to_16_khz(tmp_path, speech_stream: SpeechStream):
    """The Microphone at the device's rate: what reaches the ring is the recording at 16 kHz."""
    expected = pcm16(speech_stream)
    np.save(tmp_path / "expected.npy", expected)
    script = textwrap.dedent(f"""
        import numpy as np
        from kwstream.audio.ring import RingBuffer
        from kwstream.audio.sources import Microphone
        ring = RingBuffer(20 * 16000)
        mic = Microphone("vfile", capture_rate=48000)
        mic.start(ring)
        assert mic.sample_rate == 48000
        ring.wait_for({len(expected)} + 16000, timeout=30)
        mic.stop()
        np.save({str(tmp_path / "got.npy")!r}, ring.read(0, {len(expected)})[1])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60,
                            env=virtual_mic_env(tmp_path, expected))
    assert result.returncode == 0, result.stderr.decode()
    got = np.load(tmp_path / "got.npy")
    reference = expected.astype(np.float32) / 32768
    lag = int(np.argmax(np.correlate(got[:SAMPLE_RATE * 3], reference[:SAMPLE_RATE * 3], "full"))) - (SAMPLE_RATE * 3 - 1)
    assert abs(lag) < 64  # resampler delay, a few samples
    aligned = got[max(lag, 0):][: len(reference) - abs(lag)]
    assert np.corrcoef(aligned, reference[: len(aligned)])[0, 1] > 0.95


def test_ctrl_c_on_a_stalled_device_exits_with_the_summary(tmp_path):
    # The bundled model's shipped export: listening starts in seconds, without PyTorch.
    from kwstream.assets import MODEL_DIR

    env, writer = stalled_mic_env(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "kwstream", "listen", "--model", str(MODEL_DIR), "--keywords", "hey"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "listening" not in line and process.poll() is None:
            line = process.stderr.readline()
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        os.close(writer)
        if process.poll() is None:
            process.kill()
    assert "detection(s) in" in stderr  # the summary
    assert "stalled" in stderr and "terminate called" not in stderr and "Traceback" not in stderr
    assert process.returncode == EXIT_FAILED  # the device failed, and the user hears so
