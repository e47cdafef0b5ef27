"""The keyword pipeline: audio in, events out, synchronously and with no threads of its own.

```python
pipeline = KeywordPipeline(KeywordSet(encoder, ["hey", "stop"]), encoder)
for chunk in chunks:                      # any size, from one sample up
    for event in pipeline.push(chunk):    # Level, VoiceActivity, ScoredWindow, Detection
        ...
events = pipeline.flush()                 # end of stream: the open speech span closes
```

Each push runs the stages in stream order: levels, the VAD gate, the windower, the chunked
encoder, every keyword scorer on one encoder pass, and the detector. State lives inside
(``reset()`` forgets it all); time is in samples, counted from the first sample pushed, and in
stream seconds only on the events. The audio lives in one ring: the pipeline's own, which ``push``
writes, or a capture's (``ring=``), which a source's thread writes and ``advance`` runs; either way
the pipeline reads windows and encoder chunks from it and alone decides what it may release, so
the audio may arrive in chunks of any size: the events do not depend on them. ``Spotter`` is the
threads around one pipeline on its capture's ring; offline work (eval, bench, enrollment) pushes
arrays into one of its own, so every path scores alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from kwstream.audio.convert import NonFiniteCount
from kwstream.audio.io import SAMPLE_RATE
from kwstream.audio.ring import RingBuffer
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import EncodedFrames, Encoder, EncoderSettings
from kwstream.model.speech_embedding import shared_speech_embedding
from kwstream.stream.chunked import ChunkedEncoder
from kwstream.stream.detector import Detection, Detector, DetectorSettings, WindowScore, as_if_live
from kwstream.stream.events import Level, LevelMeter, ScoredWindow, VoiceActivity
from kwstream.stream.vad import SpeechStart, VadGate, VadSettings
from kwstream.stream.windows import Window, Windower

log = logging.getLogger(__name__)

PUSH_BLOCK_S = 0.5
"""Audio is run in pieces of at most this length, so the pipeline's own ring stays small."""
VOICE_HISTORY = SAMPLE_RATE
"""Audio kept before the oldest window for voice keywords: more than a frame's speech embedding reaches back
(``MIN_SAMPLES`` before the last step boundary by the frame's end: at most 0.87 s)."""

Event = Level | VoiceActivity | ScoredWindow | Detection
"""What ``push`` and ``flush`` return, in stream order."""

Settings = TypeVar("Settings", bound="PipelineSettings")


@dataclass(frozen=True)
class PipelineSettings:
    """Every knob of the pipeline, with units in the names."""

    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    window_s: float = 1.5
    """Audio the encoder sees at once; longer than the longest keyword plus its pauses."""
    hop_s: float = 0.25
    """Step between windows inside a speech span."""
    left_context_s: float = 0.5
    """Audio before the newest frames that they attend to at each step (see chunked.py)."""
    right_context_s: float = 0.25
    """Audio after a frame that must arrive before its encoding is final (see chunked.py)."""
    statistics_memory_s: float = 0.0
    """The first layer's statistics: over the voiced audio heard so far, fading over this many
    seconds (``RunningStatistics``); 0: each chunk's own."""
    level_block_ms: int = 50
    """Audio measured by each Level event (20 per second suits a dashboard)."""

    @classmethod
    def archive(cls: type[Settings], **changes: Any) -> Settings:
        """Faster settings for recordings, where latency does not matter (opt-in: ``kwstream scan
        --window-ms 2250 --hop-ms 1000 --smoothing-windows 1``, or ``kwstream.scan(settings=...)``):
        a hop of 1 s, so each voiced second is encoded about 1.5 times instead of 2.6 and scored in
        a third of the windows (about twice the audio per core-second), and a window as much longer
        (2.25 s), so that every keyword the live window holds whole (1.25 s) still lies whole in some
        window; windows a second apart are not averaged (one smoothing window).
        Not the default, for its cost in recall (docs/scanning.md): a window reports each keyword
        once, so one said twice within about a second is found once (spoken digits back to back:
        recall 0.65 -> 0.42), and shuffled digits lose 0.03. ``changes``: any other field."""
        return cls(**{"window_s": 2.25, "hop_s": 1.0, "detector": DetectorSettings(smoothing_windows=1), **changes})

    def __post_init__(self) -> None:
        if not 0 < self.hop_s <= self.window_s:
            raise ValueError(f"need 0 < hop ({self.hop_s} s) <= window ({self.window_s} s)")
        if self.left_context_s < 0 or self.right_context_s < 0:
            raise ValueError("context lengths must not be negative")
        if not 0 <= self.statistics_memory_s < float("inf"):
            raise ValueError(f"the statistics memory must be 0 or more seconds, not {self.statistics_memory_s}")

    @property
    def history_s(self) -> float:
        """The most audio a window or an encoder chunk reaches back for."""
        return max(self.window_s, self.left_context_s + self.hop_s + self.right_context_s)


@dataclass
class PipelineStats:
    """Running totals, readable while the pipeline runs."""

    audio_s: float = 0.0
    """Audio pushed so far; ``voiced_s`` of it lay in speech spans."""
    voiced_s: float = 0.0
    windows: int = 0
    """Windows encoded and scored, taking ``compute_s`` seconds of encoder and scorers."""
    compute_s: float = 0.0
    encoded_s: float = 0.0
    """Audio whose frames the transformer computed: how often each voiced second is encoded."""
    detections: int = 0
    window_errors: int = 0
    """Windows whose encoding or scoring raised (logged and skipped)."""
    paused_s: float = 0.0
    """Audio run while ``paused``: heard (levels, VAD) but searched for nothing."""
    non_finite_samples: int = 0
    """NaN or infinite samples pushed (a Spotter's: those its source read, ``AudioSource.non_finite_samples``), heard
    as silence (logged once a stream): unchecked, one spoils a window's normalisation."""

    @property
    def real_time_factor(self) -> float:
        """Encoder and scoring seconds per second of audio."""
        return self.compute_s / self.audio_s if self.audio_s else 0.0


class KeywordPipeline:
    """VAD gate, windows, chunked encoder, scorers and detector as one object fed audio chunks."""

    def __init__(
        self,
        keywords: KeywordSet,
        encoder: Encoder,
        settings: PipelineSettings | None = None,
        *,
        events: bool = True,
        captured: Callable[[], int] | None = None,
        stats: PipelineStats | None = None,
        ring: RingBuffer | None = None,
    ) -> None:
        """
        Args:
            keywords: what to spot, and the thresholds (read from ``keywords.thresholds`` at every window).
            encoder: the loaded model that ``keywords`` was built on (share one between pipelines).
            settings: pipeline settings; defaults suit English character models.
            events: return Level, VoiceActivity and ScoredWindow events besides the Detections
                (off, they are not even built).
            captured: for live audio, how many samples the capture has written by now, which
                times each detection; None (replay) times it as if the audio had arrived live and
                only the compute had taken time: the window's end plus its compute.
            stats: the totals to keep up to date (a Spotter shares its own); default a new one.
            ring: a capture's ring, from sample 0 of the stream, to read (``advance``) instead of
                keeping one of its own (``push``); it must hold ``settings.history_s`` twice over, and
                ``VOICE_HISTORY`` more for voice keywords.
        """
        self.keywords = keywords
        self.encoder = encoder
        self.settings = settings or PipelineSettings()
        self.events = events
        self.captured = captured
        self.stats = stats if stats is not None else PipelineStats()
        self.paused = False
        """While True, levels and the VAD go on, but nothing is encoded or detected."""
        s = self.settings
        self.detector = Detector(keywords.thresholds, s.detector)
        self._block = int(PUSH_BLOCK_S * SAMPLE_RATE)
        self._history_capacity = 2 * int(s.history_s * SAMPLE_RATE) + 2 * self._block + VOICE_HISTORY * keywords.needs_voice
        self._voice = shared_speech_embedding() if keywords.needs_voice else None
        """Loaded here, not in the first window: a missing model is an error at the start, not one per window."""
        self._capture = ring
        self.reset()

    def reset(self) -> None:
        """Forget all audio: the next sample pushed is sample 0 of a new stream (not for a
        capture's ring, which goes on)."""
        if self._capture is not None and self._capture.write_index:
            raise RuntimeError("a pipeline that reads a capture's ring cannot forget its audio")
        s = self.settings
        self._vad = VadGate(s.vad)
        self._windower = Windower(int(s.window_s * SAMPLE_RATE), int(s.hop_s * SAMPLE_RATE))
        self._meter = LevelMeter(SAMPLE_RATE * s.level_block_ms // 1000, SAMPLE_RATE)
        self._chunker = ChunkedEncoder(self.encoder, self.keywords.layers, int(s.left_context_s * SAMPLE_RATE),
                                       int(s.right_context_s * SAMPLE_RATE), self._windower.window_samples,
                                       s.statistics_memory_s)
        self.ring = self._capture or RingBuffer(self._history_capacity)
        self._position = 0
        self._non_finite = NonFiniteCount("the stream", SAMPLE_RATE)
        self._span = -1
        self._voice_steps: dict[int, np.ndarray] = {}
        """The speech embedding's steps embedded so far, shared by overlapping windows (``SpeechEmbedding.frames``)."""
        self.detector.reset()

    @property
    def position(self) -> int:
        """Samples run so far (the absolute index of the next one)."""
        return self._position

    def push(self, samples: np.ndarray) -> list[Event]:
        """Feed the next samples of the stream (16 kHz mono float32 in [-1, 1]) into the
        pipeline's own ring; returns the events they complete, in stream order."""
        if self._capture is not None:
            raise RuntimeError("a pipeline that reads a capture's ring is fed by the capture: call advance()")
        samples = self._checked(samples)
        events: list[Event] = []
        for first in range(0, len(samples), self._block):
            self.ring.write(samples[first:first + self._block])
            events += self.advance(self.ring.write_index)
        return events

    def _checked(self, samples: np.ndarray) -> np.ndarray:
        """``samples`` as 1-D float32; a ValueError for what would be misread: several channels (flattened, they
        would interleave or follow one another as one voice) or integer PCM (it would read as far past full scale).
        NaN and infinities become silence, counted in ``stats`` and logged once a stream."""
        samples = np.asarray(samples)
        if samples.ndim == 2 and 1 in samples.shape:
            samples = samples.reshape(-1)  # one channel, as a column or a row
        if samples.ndim != 1:
            raise ValueError(f"push takes mono samples (a 1-D array), got shape {samples.shape}: mix the channels "
                             "down (samples.mean(axis=1)) or pick one")
        if not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"push takes float samples in [-1, 1], got {samples.dtype}: for 16-bit PCM, "
                             "samples.astype(np.float32) / 32768")
        samples = samples.astype(np.float32, copy=False)
        if found := self._non_finite.count(samples):
            self.stats.non_finite_samples += found
            samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
        return samples

    def advance(self, stop: int) -> list[Event]:
        """Run the ring's samples from ``position`` up to ``stop`` (at most its write index);
        returns the events they complete, in stream order."""
        events: list[Event] = []
        while self._position < stop:
            end = min(stop, self._position + self._block)
            piece = self._read(self._position, end)
            if self.paused:
                self.stats.paused_s += (end - self._position) / SAMPLE_RATE
            self._position = end
            if self.events:
                events += self._meter.push(piece)
            events += self._step(self._vad.push(piece))
        return events

    def flush(self) -> list[Event]:
        """End of stream: close an open speech span and score its last window."""
        return self._step(self._vad.flush())

    def _step(self, vad_events: list) -> list[Event]:
        events: list[Event] = []
        cursor = self._position
        if self.events:
            events += [VoiceActivity(self._seconds(e.sample), isinstance(e, SpeechStart)) for e in vad_events]
        for window in self._windower.push(vad_events, cursor):
            if self.paused:
                self._span = -1  # after a pause, start afresh where listening resumes
                continue
            if window.span != self._span:
                self._span = window.span
                self.detector.new_span()
                self._chunker.start_span(window.start_sample)
            events += self._process(window)
        self.stats.audio_s = cursor / SAMPLE_RATE
        self.stats.voiced_s = self._vad.voiced_samples / SAMPLE_RATE
        keep = cursor - self._windower.window_samples
        if self._windower.oldest_needed is not None:
            keep = min(keep, self._windower.oldest_needed, self._chunker.oldest_needed)
        if self.keywords.needs_voice:
            keep -= VOICE_HISTORY
        self.ring.release(keep)  # the one place that decides what the ring may overwrite
        return events

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of the stream. Before its first sample and after its last (the quiet that frames
        it, ``VadGate``) they read as silence, and so does audio a capture overwrote before the pipeline ran it (an
        overrun, counted by the ring), so that sample indices stay true."""
        begin, end = max(start, 0), min(stop, self.ring.write_index)
        if begin >= end:
            return np.zeros(stop - start, np.float32)
        first, audio = self.ring.read(begin, end)
        if first == start and end == stop:
            return audio
        return np.concatenate((np.zeros(first - start, np.float32), audio, np.zeros(stop - end, np.float32)))

    def _seconds(self, sample: int) -> float:
        """A sample index as stream time, within the audio heard (the quiet around the stream has no time of its own)."""
        return min(max(sample, 0), self._position) / SAMPLE_RATE

    def _process(self, window: Window) -> list[Event]:
        t0 = time.perf_counter()
        try:
            first_sample, frames = self._chunker.frames(self._read, window.start_sample, window.stop_sample)
            if self.keywords.needs_voice:
                frames = self._with_voice(first_sample, frames)
            matches = self.keywords.score_frames(frames)
        except Exception as exc:  # one bad window must not end a long-running listener
            self.stats.window_errors += 1
            log.error("window %.2f-%.2f s failed: %s", window.start_sample / SAMPLE_RATE, window.stop_sample / SAMPLE_RATE, exc)
            return []
        compute_s = time.perf_counter() - t0
        self.stats.windows += 1
        self.stats.compute_s += compute_s
        self.stats.encoded_s = self._chunker.encoded_samples / SAMPLE_RATE
        spf = self.encoder.samples_per_frame
        scores = {
            keyword: WindowScore(keyword, m.score, self._seconds(first_sample + m.start_frame * spf),
                                 self._seconds(first_sample + m.end_frame * spf))
            for keyword, m in matches.items()
        }
        events: list[Event] = []
        if self.events:
            events.append(ScoredWindow(self._seconds(window.start_sample), self._seconds(window.stop_sample), scores,
                                       compute_s, window.span))
        if self.captured is not None:
            detected_at = self.captured() / SAMPLE_RATE
        else:
            detected_at = as_if_live(self._seconds(window.stop_sample), compute_s)  # as a replay of its events times it
        detections = self.detector.push(list(scores.values()), detected_at, time.time())
        self.stats.detections += len(detections)
        return events + detections

    def _with_voice(self, first_sample: int, frames: EncodedFrames) -> EncodedFrames:
        """``frames`` with the speech embedding beside them, for voice keywords (each frame's from the 0.79 s of audio
        up to the last 80 ms step by its end, reaching back at most 0.87 s, which the ring keeps: ``VOICE_HISTORY``);
        steps that earlier windows embedded are reused (``_voice_steps``)."""
        rows = self._voice.frames(self._read, first_sample, len(frames), self.encoder.samples_per_frame,
                                  known=self._voice_steps)
        return replace(frames, voice=rows)


def run(pipeline: KeywordPipeline, audio: np.ndarray) -> list[Event]:
    """Every event of ``audio`` as one whole stream (pushed, then flushed)."""
    return pipeline.push(audio) + pipeline.flush()
