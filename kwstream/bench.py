"""Cost of the real pipeline per second of audio, for continuous speech and for silence.

Both streams go through exactly the listening path (a replay source, ring, VAD, windows, encoder,
scorer, detector) as fast as possible. CPU seconds count every thread of the process, so they are
the cost a user pays on a busy machine too; wall seconds give the real-time factor.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from kwstream.audio.sources import SAMPLE_RATE, RawStdin
from kwstream.encoder import Encoder
from kwstream.spotter import Keyword, Spotter, SpotterSettings

ASSET_AUDIO = Path(__file__).resolve().parent.parent / "assets" / "audio"
WORD_GAP_S = 0.15
"""Pause between words of the speech stream: shorter than the VAD hangover, so speech is continuous."""
ROOM_NOISE_RMS = 1e-4
"""The silence stream's level (-80 dBFS): a quiet room rather than digital zero."""


@dataclass(frozen=True)
class BenchResult:
    stream: str
    audio_s: float
    cpu_per_audio_s: float
    """Process CPU seconds (all threads) per second of audio: median of the repeats."""
    real_time_factor: float
    """Wall seconds per second of audio: median of the repeats."""
    window_ms: float
    """Encoder + scoring time per window (the mean of a pass; median of the repeats)."""
    windows: int


def speech_stream(duration_s: float) -> np.ndarray:
    """Real recorded words from assets/audio back to back, repeated to ``duration_s``."""
    words = []
    for path in sorted(ASSET_AUDIO.glob("fsdd_*.wav")):
        audio, rate = soundfile.read(path, dtype="float32")
        words.append(soxr.resample(audio, rate, SAMPLE_RATE))
        words.append(np.zeros(int(WORD_GAP_S * SAMPLE_RATE), np.float32))
    block = np.concatenate(words)
    return np.tile(block, int(np.ceil(duration_s * SAMPLE_RATE / len(block))))[: int(duration_s * SAMPLE_RATE)]


def silence_stream(duration_s: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, ROOM_NOISE_RMS, int(duration_s * SAMPLE_RATE)).astype(np.float32)


def _pcm(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def run_once(encoder: Encoder, keywords: list[str], settings: SpotterSettings, audio: np.ndarray):
    """One pass of the pipeline over ``audio``; returns (cpu_s, wall_s, spotter)."""
    spotter = Spotter([Keyword(k) for k in keywords], source=RawStdin(io.BytesIO(_pcm(audio)), realtime=False),
                      settings=settings, encoder=encoder)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with spotter:
        spotter.wait()
    return time.process_time() - cpu0, time.perf_counter() - wall0, spotter


def bench(encoder: Encoder, keywords: list[str], settings: SpotterSettings, duration_s: float, repeats: int,
          progress=None) -> list[BenchResult]:
    results = []
    for name, audio in (("speech", speech_stream(duration_s)), ("silence", silence_stream(duration_s))):
        cpu, wall, window_ms, windows = [], [], [], 0
        for _ in range(repeats):
            cpu_s, wall_s, spotter = run_once(encoder, keywords, settings, audio)
            cpu.append(cpu_s / duration_s)
            wall.append(wall_s / duration_s)
            windows = spotter.stats.windows
            if windows:
                window_ms.append(1000 * spotter.stats.compute_s / windows)
            if progress:
                progress()
        results.append(BenchResult(name, duration_s, statistics.median(cpu), statistics.median(wall),
                                   statistics.median(window_ms) if window_ms else 0.0, windows))
    return results


def random_model(size: str) -> str:
    """A temporary random-weight checkpoint of ``size`` (cost is what matters, not accuracy)."""
    from kwstream.random_model import save_random_ctc_model

    return str(save_random_ctc_model(Path(tempfile.mkdtemp(prefix="kwstream-")) / size, size=size))
