"""The streaming spotter: wires source, ring, VAD, windows, encoder, scorer and detector.

Threads: the source's own (PortAudio callback or file reader) only writes into the ring; one worker
thread reads the ring, runs VAD, encodes voiced windows, scores and detects; one dispatcher thread
runs the user's callback, so a slow or raising callback never stalls or kills the audio path.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kwstream.audio.ring import RingBuffer
from kwstream.audio.io import SAMPLE_RATE
from kwstream.audio.sources import AudioSource, Microphone
from kwstream.stream.chunked import ChunkedEncoder
from kwstream.keywords.calibration import Calibration, resolve_thresholds
from kwstream.stream.detector import Detection, Detector, DetectorSettings, WindowScore
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.errors import KeywordError
from kwstream.stream.events import LevelMeter, ScoredWindow, VoiceActivity
from kwstream.keywords.base import KeywordScorer, split_threshold
from kwstream.keywords.ctc import CtcKeywordScorer, normalize_keyword
from kwstream.keywords.homophones import warn_about_homophones
from kwstream.stream.vad import SpeechStart, VadGate, VadSettings
from kwstream.stream.windows import Window, Windower

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Keyword:
    """A typed keyword, optionally with its own threshold."""

    text: str
    threshold: float | None = None

    @classmethod
    def parse(cls, spec: str) -> Keyword:
        """``"hey"`` or ``"hey:0.8"`` (text, then an optional threshold in [0, 1])."""
        text, threshold = split_threshold(spec)
        text = normalize_keyword(text)
        if not text:
            raise KeywordError(f"empty keyword in {spec!r}")
        return cls(text, threshold)


def keyword_thresholds(
    typed: Sequence[Keyword],
    scorers: Sequence[KeywordScorer],
    overrides: Mapping[str, float] | None,
    everyone: float | None,
    calibration: Calibration | None,
) -> dict[str, float]:
    """Every keyword's threshold: typed ``hey:0.8`` or an override, else ``everyone``, else what
    its scorer measured for it, else the model's calibration by length (see resolve_thresholds)."""
    own = {k.text: k.threshold for k in typed} | {k: None for scorer in scorers for k in scorer.keywords}
    own |= {k: t for k, t in (overrides or {}).items() if k in own}
    measured = {k: t for scorer in scorers for k, t in scorer.thresholds.items()}
    return resolve_thresholds(own, everyone, calibration, measured)


@dataclass(frozen=True)
class SpotterSettings:
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
    pause_ms: int = 160
    """Blank time that counts as a word boundary when the model emits no delimiter (a CTC model
    leaves blanks inside words too; on the development streams 160 ms beat 100 ms and 60 ms, and
    matched 240 ms: mean recall at 1 false alarm per hour 0.39, against 0.35, 0.31 and 0.38)."""
    ring_s: float = 30.0
    """Audio the ring holds; the worker may fall this far behind before audio is lost."""
    read_block_ms: int = 30
    """How much new audio the worker waits for before running the VAD."""
    level_block_ms: int = 50
    """Audio measured by each Level event (20 per second suits a dashboard)."""

    def __post_init__(self) -> None:
        if not 0 < self.hop_s <= self.window_s:
            raise ValueError(f"need 0 < hop ({self.hop_s} s) <= window ({self.window_s} s)")
        if self.left_context_s < 0 or self.right_context_s < 0:
            raise ValueError("context lengths must not be negative")
        if max(self.window_s, self.left_context_s + self.hop_s + self.right_context_s) * 2 > self.ring_s:
            raise ValueError("the ring must hold at least two windows (or chunks with their context)")


@dataclass
class SpotterStats:
    """Running totals, readable while the spotter runs."""

    audio_s: float = 0.0
    voiced_s: float = 0.0
    windows: int = 0
    compute_s: float = 0.0
    encoded_s: float = 0.0
    """Audio whose frames the transformer computed: how often each voiced second is encoded."""
    detections: int = 0
    overrun_samples: int = 0
    dropped_frames: int = 0
    window_errors: int = 0
    callback_errors: int = 0

    @property
    def real_time_factor(self) -> float:
        """Encoder and scoring seconds per second of audio."""
        return self.compute_s / self.audio_s if self.audio_s else 0.0


_END = object()
MAX_UNREAD_DETECTIONS = 1000
"""Detections kept for detections() while nobody reads them (a listener that only uses on_detect)."""


class Spotter:
    """Spots keywords in a live or replayed audio stream.

    ```python
    with Spotter(["hey", "stop"], on_detect=print) as spotter:
        spotter.wait()
    ```
    """

    def __init__(
        self,
        keywords: Sequence[str | Keyword] = (),
        on_detect: Callable[[Detection], object] | None = None,
        *,
        scorers: Sequence[KeywordScorer] = (),
        thresholds: Mapping[str, float] | None = None,
        source: AudioSource | None = None,
        settings: SpotterSettings | None = None,
        encoder: Encoder | None = None,
        on_event: Callable[[object], object] | None = None,
    ) -> None:
        """
        Args:
            keywords: typed keywords such as ``"hey"``, ``"hey computer"``, ``"stop:0.7"``, or Keyword objects.
            on_detect: called with each Detection on the dispatcher thread; exceptions are logged.
            scorers: other keyword scorers (enrolled examples, a trained classifier) on the same encoder.
            thresholds: per-keyword thresholds that override every default, for any scorer's keywords.
            source: where audio comes from; default the system's default microphone.
            settings: pipeline settings; defaults suit English character models.
            encoder: an already loaded encoder to share between spotters (else loaded here).
            on_event: called on the dispatcher thread with every Level, VoiceActivity,
                ScoredWindow and Detection, in stream order (for dashboards and logs).
        """
        self.settings = settings or SpotterSettings()
        parsed = [k if isinstance(k, Keyword) else Keyword.parse(k) for k in keywords]
        if not parsed and not scorers:
            raise KeywordError("no keywords given")
        self.encoder = encoder or Encoder(self.settings.encoder)
        self._scorers: list[KeywordScorer] = []
        if parsed:
            self.encoder.require_ctc_head()
            for k in parsed:
                warn_about_homophones(k.text)
            frame_s = self.encoder.samples_per_frame / SAMPLE_RATE
            self._scorers.append(CtcKeywordScorer(
                [k.text for k in parsed],
                self.encoder.tokens,
                self.encoder.blank_id,
                self.encoder.delimiter_id,
                pause_frames=max(1, round(self.settings.pause_ms / 1000 / frame_s)),
            ))
        self._scorers += scorers
        self.keywords = [k for scorer in self._scorers for k in scorer.keywords]
        if len({k.lower() for k in self.keywords}) != len(self.keywords):
            raise KeywordError(f"duplicate keywords in {self.keywords}")
        self._layers = tuple(sorted({layer for scorer in self._scorers for layer in scorer.layers}))
        for layer in self._layers:
            self.encoder.check_layer(layer)
        self.thresholds = keyword_thresholds(parsed, scorers, thresholds, self.settings.detector.threshold,
                                             self.encoder.calibration)
        self.source = source if source is not None else Microphone()
        self.on_detect = on_detect
        self.on_event = on_event
        self.stats = SpotterStats()
        self._detector = Detector(self.thresholds, self.settings.detector)
        self._paused = threading.Event()
        self._ring = RingBuffer(int(self.settings.ring_s * SAMPLE_RATE))
        self._finished = threading.Event()
        self._callbacks: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue(MAX_UNREAD_DETECTIONS)
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Spotter:
        """Open the source and start the worker and dispatcher threads."""
        self.source.start(self._ring)
        for target, name in ((self._work, "kwstream-worker"), (self._dispatch, "kwstream-dispatch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop capturing; audio already captured is still processed and dispatched."""
        self.source.stop()
        for thread in self._threads:
            thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the source is exhausted and every detection dispatched; True if so."""
        return self._finished.wait(timeout)

    def __enter__(self) -> Spotter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pause(self) -> None:
        """Keep capturing (levels and VAD go on) but encode and detect nothing until resume()."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def set_threshold(self, keyword: str, threshold: float) -> None:
        """Change one keyword's threshold while listening."""
        if keyword not in self.thresholds:
            raise KeywordError(f"unknown keyword {keyword!r}")
        if not 0.0 <= threshold <= 1.0:
            raise KeywordError(f"threshold must be in [0, 1], got {threshold}")
        self.thresholds[keyword] = threshold
        self._detector.thresholds[keyword] = threshold

    def detections(self) -> Iterator[Detection]:
        """Detections as they happen, from the start of the stream until its end (blocking
        generator); at most MAX_UNREAD_DETECTIONS wait unread, the oldest make way."""
        while (item := self._results.get()) is not _END:
            yield item
        self._keep_result(_END)  # let a second iteration end too

    # -- worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        settings = self.settings
        vad = VadGate(settings.vad)
        windower = Windower(int(settings.window_s * SAMPLE_RATE), int(settings.hop_s * SAMPLE_RATE))
        meter = LevelMeter(SAMPLE_RATE * settings.level_block_ms // 1000, SAMPLE_RATE)
        block = SAMPLE_RATE * settings.read_block_ms // 1000
        cursor = 0
        chunker = ChunkedEncoder(self.encoder, self._layers, int(settings.left_context_s * SAMPLE_RATE),
                                 int(settings.right_context_s * SAMPLE_RATE), windower.window_samples)
        span = -1
        try:
            while True:
                self._ring.wait_for(cursor + block, timeout=0.5)
                available = self._ring.write_index
                end_of_stream = self._ring.closed and available == self._ring.write_index
                if available > cursor:
                    audio = self._read(cursor, available)
                    events = vad.push(audio)
                    cursor = available
                    if self.on_event is not None:
                        for level in meter.push(audio):
                            self._callbacks.put(level)
                else:
                    events = []
                if end_of_stream:
                    events += vad.flush()
                for event in events:
                    self._emit(lambda: VoiceActivity(event.sample / SAMPLE_RATE, isinstance(event, SpeechStart)))
                for window in windower.push(events, cursor):
                    if self._paused.is_set():
                        span = -1  # after a pause, start afresh where listening resumes
                        continue
                    if window.span != span:
                        span = window.span
                        self._detector.new_span()
                        chunker.start_span(window.start_sample)
                    self._process(window, chunker)
                self._update_stats(cursor, vad)
                keep = cursor - windower.window_samples
                if windower.oldest_needed is not None:
                    keep = min(keep, windower.oldest_needed, chunker.oldest_needed)
                self._ring.release(keep)
                if end_of_stream:
                    break
        except Exception:
            log.exception("spotter worker failed")
        finally:
            self._callbacks.put(_END)

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) from the ring; audio lost to an overrun reads as silence, so that
        sample indices stay true."""
        first, audio = self._ring.read(start, stop)
        return audio if first == start else np.concatenate((np.zeros(first - start, np.float32), audio))

    def _process(self, window: Window, chunker: ChunkedEncoder) -> None:
        t0 = time.perf_counter()
        try:
            first_sample, frames = chunker.frames(self._read, window.start_sample, window.stop_sample)
            matches = [m for scorer in self._scorers for m in scorer.score_frames(frames)]
        except Exception as exc:  # one bad window must not end a long-running listener
            self.stats.window_errors += 1
            log.error("window %.2f-%.2f s failed: %s", window.start_sample / SAMPLE_RATE, window.stop_sample / SAMPLE_RATE, exc)
            return
        compute_s = time.perf_counter() - t0
        self.stats.windows += 1
        self.stats.compute_s += compute_s
        self.stats.encoded_s = chunker.encoded_samples / SAMPLE_RATE
        spf = self.encoder.samples_per_frame
        scores = [
            WindowScore(
                keyword,
                m.score,
                (first_sample + m.start_frame * spf) / SAMPLE_RATE,
                (first_sample + m.end_frame * spf) / SAMPLE_RATE,
            )
            for keyword, m in zip(self.keywords, matches)
        ]
        self._emit(lambda: ScoredWindow(
            window.start_sample / SAMPLE_RATE, window.stop_sample / SAMPLE_RATE, {s.keyword: s.score for s in scores},
            compute_s, {s.keyword: (s.start, s.end) for s in scores}, window.span,
        ))
        if self.source.live:
            detected_at = self._ring.write_index / SAMPLE_RATE
        else:  # replay as fast as possible: when it would have fired had the audio come live
            detected_at = window.stop_sample / SAMPLE_RATE + compute_s
        for detection in self._detector.push(scores, detected_at, time.time()):
            self.stats.detections += 1
            self._callbacks.put(detection)

    def _emit(self, make_event: Callable[[], object]) -> None:
        """Queue an event for on_event; built only when someone listens."""
        if self.on_event is not None:
            self._callbacks.put(make_event())

    def _update_stats(self, cursor: int, vad: VadGate) -> None:
        self.stats.audio_s = cursor / SAMPLE_RATE
        self.stats.voiced_s = vad.voiced_samples / SAMPLE_RATE
        overrun, dropped = self._ring.overrun_samples, self.source.dropped_frames
        if overrun > self.stats.overrun_samples:
            log.warning("audio lost: %.2f s overwritten before it was processed (the model is slower than real time)",
                        (overrun - self.stats.overrun_samples) / SAMPLE_RATE)
        if dropped > self.stats.dropped_frames:
            log.warning("audio lost: the input reported %d overflow(s)", dropped - self.stats.dropped_frames)
        self.stats.overrun_samples, self.stats.dropped_frames = overrun, dropped

    # -- dispatcher --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while (item := self._callbacks.get()) is not _END:
            if isinstance(item, Detection):
                self._keep_result(item)
                self._call("on_detect", self.on_detect, item)
            self._call("on_event", self.on_event, item)
        self._keep_result(_END)
        self._finished.set()

    def _keep_result(self, item: object) -> None:
        while True:
            try:
                self._results.put_nowait(item)
                return
            except queue.Full:  # nobody reads detections(): forget the oldest
                with contextlib.suppress(queue.Empty):
                    self._results.get_nowait()

    def _call(self, name: str, callback: Callable[[object], object] | None, item: object) -> None:
        if callback is None:
            return
        try:
            callback(item)
        except Exception as exc:
            self.stats.callback_errors += 1
            log.error("%s callback raised %s: %s", name, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
