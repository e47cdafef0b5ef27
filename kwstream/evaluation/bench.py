"""Cost of the real pipeline per second of audio, for continuous speech and for silence.

Both streams are pushed through a KeywordPipeline (VAD, windows, encoder, scorer, detector: the
stages ``listen`` runs) as fast as possible. CPU seconds count every thread of the process (the
model's own pools), so they are the cost a user pays on a busy machine too; wall seconds give the real-time factor. The speech
stream is real recorded digit words whose ends are known, so detections of those words give the
latency from the end of a spoken keyword to its detection (the time the audio would have taken
to arrive live, plus the measured compute).
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwstream.assets import AUDIO_DIR
from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.evaluation.metrics import NO_OUTCOME, Label, Outcome, match
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder
from kwstream.stream.detector import Detection
from kwstream.stream.pipeline import KeywordPipeline, PipelineSettings, PipelineStats, run

ASSET_AUDIO = AUDIO_DIR
WORD_GAP_S = 0.15
"""Pause between words of the speech stream: shorter than the VAD hangover, so speech is continuous."""
ROOM_NOISE_RMS = 1e-4
"""The silence stream's level (-80 dBFS): a quiet room rather than digital zero."""


WORDS = {"0": "zero", "3": "three", "7": "seven", "9": "nine"}
"""The digit spoken in each kwstream/assets/audio/fsdd_{digit}_*.wav: the default bench keywords."""


@dataclass(frozen=True)
class SpokenWord:
    word: str
    start_s: float
    end_s: float


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
    encoded_per_audio_s: float
    """Seconds of audio the encoder processed per second of stream (context counted each time)."""
    words: int
    """Keywords spoken in the stream (all runs)."""
    detected: int
    """Of those, detected within the eval hit window (all runs)."""
    false_alarms: int
    """Detections that hit no spoken keyword (all runs)."""
    latency_median_s: float | None
    """From the end of a spoken keyword to its detection; None without detections."""
    latency_p95_s: float | None
    peak_memory_mb: float
    """Peak resident memory of the whole process so far (model included)."""


def speech_stream(duration_s: float) -> tuple[np.ndarray, list[SpokenWord]]:
    """Real recorded words from kwstream/assets/audio back to back, repeated to ``duration_s``, and where
    each whole word lies."""
    pieces, words, at = [], [], 0
    gap = np.zeros(int(WORD_GAP_S * SAMPLE_RATE), np.float32)
    while at < duration_s * SAMPLE_RATE:
        for path in sorted(ASSET_AUDIO.glob("fsdd_*.wav")):
            audio = read_audio(path)
            if at + len(audio) <= duration_s * SAMPLE_RATE:
                words.append(SpokenWord(WORDS[path.stem.split("_")[1]], at / SAMPLE_RATE, (at + len(audio)) / SAMPLE_RATE))
            pieces += [audio, gap]
            at += len(audio) + len(gap)
    return np.concatenate(pieces)[: int(duration_s * SAMPLE_RATE)], words


def silence_stream(duration_s: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, ROOM_NOISE_RMS, int(duration_s * SAMPLE_RATE)).astype(np.float32)


def run_once(encoder: Encoder, keywords: KeywordSet, settings: PipelineSettings,
             audio: np.ndarray) -> tuple[float, float, PipelineStats, list[Detection]]:
    """One pass of a new pipeline over ``audio``: (cpu_s, wall_s, stats, detections)."""
    pipeline = KeywordPipeline(keywords, encoder, settings, events=False)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    detections = [e for e in run(pipeline, audio) if isinstance(e, Detection)]
    return time.process_time() - cpu0, time.perf_counter() - wall0, pipeline.stats, detections


def outcome(detections: list[Detection], words: list[SpokenWord]) -> Outcome:
    """Hits (with their latency) and false alarms among ``detections``, matched as `kwstream eval` does."""
    return sum((match([d for d in detections if d.keyword == keyword],
                      [Label("bench", w.word, w.start_s, w.end_s) for w in words if w.word == keyword])
                for keyword in sorted({w.word for w in words} | {d.keyword for d in detections})), NO_OUTCOME)


def bench(encoder: Encoder, keywords: KeywordSet, settings: PipelineSettings, duration_s: float, repeats: int,
          progress=None) -> list[BenchResult]:
    speech, spoken = speech_stream(duration_s)
    results = []
    for name, audio, words in (("speech", speech, spoken), ("silence", silence_stream(duration_s), [])):
        words = [w for w in words if w.word in keywords.names]
        cpu, wall, window_ms, windows, encoded, found, false_alarms = [], [], [], 0, 0.0, [], 0
        for _ in range(repeats):
            cpu_s, wall_s, stats, detections = run_once(encoder, keywords, settings, audio)
            cpu.append(cpu_s / duration_s)
            wall.append(wall_s / duration_s)
            windows, encoded = stats.windows, stats.encoded_s / duration_s
            scored = outcome(detections, words)
            found += scored.latencies
            false_alarms += scored.false_alarms
            if windows:
                window_ms.append(1000 * stats.compute_s / windows)
            if progress:
                progress()
        results.append(BenchResult(
            name, duration_s, statistics.median(cpu), statistics.median(wall),
            statistics.median(window_ms) if window_ms else 0.0, windows, encoded, len(words) * repeats, len(found), false_alarms,
            statistics.median(found) if found else None, float(np.percentile(found, 95)) if found else None,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        ))
    return results


@dataclass(frozen=True)
class StartupResult:
    cpu_s: float
    """CPU seconds of a whole ``kwstream listen`` process on a second of quiet room noise: start-up
    and that second's (VAD-only) work, median of the repeats."""
    wall_s: float
    """Seconds from launch to its "listening" line, median of the repeats."""
    peak_memory_mb: float
    """The process's own peak resident memory (the largest of the repeats)."""


LISTEN_AND_REPORT_PEAK = """
import re, sys
from kwstream.cli.main import main
try:
    status = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as status_file:
        print("peak-rss-kb", re.search(r"VmHWM:\\s*(\\d+)", status_file.read())[1], file=sys.stderr, flush=True)
sys.exit(status)
"""
"""``kwstream listen`` that writes its own peak resident memory last: VmHWM is the process image's
own high-water mark, where ``ru_maxrss`` (the child's own as much as RUSAGE_CHILDREN) also counts the
parent's memory, which the child held between fork and exec (a 600 MB parent: 613 MB against 13 MB)."""


def startup(model: str, backend: str, repeats: int, progress=None) -> StartupResult:
    """Start-up as a user meets it: ``kwstream listen`` launched ``repeats`` times as a new process."""
    import subprocess
    import sys

    import soundfile

    cpu, wall, peak = [], [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        quiet = Path(tmp) / "quiet.wav"
        soundfile.write(quiet, silence_stream(1.0), SAMPLE_RATE)
        command = [sys.executable, "-c", LISTEN_AND_REPORT_PEAK, "listen", "--model", model, "--backend", backend,
                   "--keywords", "hey", "--file", str(quiet), "--fast"]
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            launched = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            listening, peak_kb = None, None
            for line in process.stderr:
                if listening is None and "listening" in line:
                    listening = time.perf_counter() - launched
                if line.startswith("peak-rss-kb "):
                    peak_kb = int(line.split()[1])
            if process.wait() != 0 or listening is None or peak_kb is None:
                raise RuntimeError(f"kwstream listen failed while measuring start-up: {' '.join(command)}")
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            wall.append(listening)
            peak = max(peak, peak_kb / 1024)
            if progress:
                progress()
    return StartupResult(statistics.median(cpu), statistics.median(wall), peak)


def random_model(size: str) -> str:
    """A temporary random-weight checkpoint of ``size`` (cost is what matters, not accuracy)."""
    from kwstream.model.random_model import save_random_ctc_model

    return str(save_random_ctc_model(Path(tempfile.mkdtemp(prefix="kwstream-")) / size, size=size))
