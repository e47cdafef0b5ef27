"""Shared fixtures: a tiny random wav2vec2 CTC model and streams of real speech with known timing."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from kwstream.model.random_model import save_random_ctc_model

REPO = Path(__file__).resolve().parent.parent
ASSET_AUDIO = REPO / "kwstream" / "assets" / "audio"
SAMPLE_RATE = 16000

# A shell starts background jobs (`pytest &`, nohup) with SIGINT ignored, and children inherit that,
# so the Ctrl-C tests' listeners would never see their SIGINT. A handler here (reset to the default
# in each child at exec) lets them.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised Wav2Vec2ForCTC (English character vocabulary): wiring only, no accuracy."""
    return save_random_ctc_model(tmp_path_factory.mktemp("models") / "tiny", size="tiny")


def load_word(name: str) -> np.ndarray:
    """A real recorded digit from kwstream/assets/audio, as 16 kHz float32."""
    audio, rate = soundfile.read(ASSET_AUDIO / f"fsdd_{name}.wav", dtype="float32")
    return soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)


@dataclass(frozen=True)
class SpeechStream:
    """Real words separated by near-silence, with the sample spans where each word lies."""

    audio: np.ndarray
    word_spans: list[tuple[int, int]]

    def write(self, path: Path, rate: int = SAMPLE_RATE, channels: int = 1, subtype: str = "PCM_16") -> Path:
        audio = self.audio if rate == SAMPLE_RATE else soxr.resample(self.audio, SAMPLE_RATE, rate)
        soundfile.write(path, np.repeat(audio[:, None], channels, axis=1), rate, subtype=subtype)
        return path


def make_speech_stream(words: list[str], gap_s: float = 1.2, edge_s: float = 1.0, seed: int = 0) -> SpeechStream:
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(edge_s * SAMPLE_RATE), np.float32)]
    spans = []
    position = len(parts[0])
    for i, name in enumerate(words):
        word = load_word(name)
        spans.append((position, position + len(word)))
        parts.append(word)
        gap = np.zeros(int((gap_s if i < len(words) - 1 else edge_s) * SAMPLE_RATE), np.float32)
        parts.append(gap)
        position += len(word) + len(gap)
    audio = np.concatenate(parts)
    audio += rng.normal(0, 1e-4, len(audio)).astype(np.float32)  # a quiet room, not digital zero
    return SpeechStream(audio.astype(np.float32), spans)


@pytest.fixture(scope="session")
def speech_stream() -> SpeechStream:
    return make_speech_stream(["3_theo_0", "7_jackson_0", "0_lucas_1"])
