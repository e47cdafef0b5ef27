"""The streaming spotter: the threads around one KeywordPipeline.

Threads: the source's own (PortAudio callback or file reader) only writes into the ring; one worker
thread runs what is new in it through the pipeline, which reads that same ring and releases what no
window needs (VAD, windows, encoder, scorers, detector: ``kwstream.stream.pipeline``); one
dispatcher thread runs the user's callbacks, so a slow or raising callback never stalls or kills
the audio path.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from kwstream.audio.io import SAMPLE_RATE
from kwstream.audio.ring import RingBuffer
from kwstream.audio.sources import AudioSource, Microphone
from kwstream.errors import KeywordError
from kwstream.keywords.base import KeywordScorer
from kwstream.keywords.keyword_set import Keyword, KeywordSet, KeywordSettings, check_threshold, parse_keywords
from kwstream.model.encoder import Encoder
from kwstream.stream.detector import Detection
from kwstream.stream.pipeline import KeywordPipeline, PipelineSettings, PipelineStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpotterSettings(PipelineSettings):
    """Every knob of the pipeline (see PipelineSettings), of the keywords the Spotter builds from
    names, and of the threads around it."""

    keywords: KeywordSettings = field(default_factory=KeywordSettings)
    """The threshold of every keyword without its own, and the pause between words (not for a KeywordSet passed in)."""
    ring_s: float = 30.0
    """Audio the ring holds; the worker may fall this far behind before audio is lost."""
    read_block_ms: int = 30
    """How much new audio the worker waits for before running the VAD."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.history_s * 2 > self.ring_s:
            raise ValueError(f"a window with its context ({self.history_s:g} s) must fit twice in the ring of audio "
                             f"({self.ring_s:g} s): shorten the window (--window-ms) or the context")


@dataclass
class SpotterStats(PipelineStats):
    """Running totals, readable while the spotter runs."""

    overrun_samples: int = 0
    dropped_frames: int = 0
    callback_errors: int = 0


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
        keywords: str | Sequence[str | Keyword] | KeywordSet = (),
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
            keywords: typed keywords such as ``"hey"``, ``"hey computer"``, ``"stop:0.7"``, or Keyword
                objects; or one string read as the CLI reads ``--keywords hey,stop:0.7`` (the README shows
                the two side by side; a bare string would otherwise be spotted letter by letter); or a
                KeywordSet built on ``encoder`` (then ``scorers`` and ``thresholds`` are its own).
            on_detect: called with each Detection on the dispatcher thread; exceptions are logged.
            scorers: other keyword scorers (enrolled examples, a trained classifier) on the same encoder.
            thresholds: per-keyword thresholds in [0, 1] that override every default, for any scorer's keywords.
            source: where audio comes from; default the system's default microphone.
            settings: pipeline settings; defaults suit English character models.
            encoder: an already loaded encoder to share between spotters (else loaded here).
            on_event: called on the dispatcher thread with every Level, VoiceActivity,
                ScoredWindow and Detection, in stream order (for dashboards and logs).
        """
        self.settings = settings or SpotterSettings()
        if isinstance(keywords, str):
            keywords = parse_keywords(keywords)
        if not isinstance(keywords, KeywordSet) and not keywords and not scorers:
            raise KeywordError("no keywords given")  # before a model loads for minutes
        for keyword, threshold in (thresholds or {}).items():  # before the model loads; the KeywordSet checks them too
            check_threshold(keyword, threshold)
        self.source = source if source is not None else Microphone()
        if getattr(self.source, "recorded", False):  # a missing or unreadable file: AudioInputError here, before the model loads
            self.source.check()  # (a device is checked when it opens: a spotter may be built before its microphone is plugged in)
        self.encoder = encoder or Encoder(self.settings.encoder)
        if isinstance(keywords, KeywordSet):
            if scorers or thresholds:
                raise ValueError("a KeywordSet brings its own scorers and thresholds: build it with them")
            self.keyword_set = keywords
        else:
            self.keyword_set = KeywordSet(self.encoder, keywords, scorers, thresholds=thresholds, settings=self.settings.keywords)
            for warning in self.keyword_set.homophone_warnings:  # the CLI shows its own set's, so it passes the set
                log.warning(warning)
        self.keywords = self.keyword_set.names
        self.on_detect = on_detect
        self.on_event = on_event
        self.stats = SpotterStats()
        self._ring = RingBuffer(int(self.settings.ring_s * SAMPLE_RATE))
        self.pipeline = KeywordPipeline(self.keyword_set, self.encoder, self.settings, events=on_event is not None,
                                        captured=self._captured if self.source.live else None, stats=self.stats,
                                        ring=self._ring)
        self._finished = threading.Event()
        self._callbacks: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue(MAX_UNREAD_DETECTIONS)
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Spotter:
        """Open the source and start the worker and dispatcher threads."""
        if self._threads:  # its ring and source are spent: a second run would end at once with nothing
            raise RuntimeError("this Spotter has already run: build a new one to listen again")
        self.source.start(self._ring)
        for target, name in ((self._work, "kwstream-worker"), (self._dispatch, "kwstream-dispatch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop capturing; audio already captured is still processed and dispatched. From a callback
        (the dispatcher thread, which cannot wait for itself) it returns at once: wait() tells when the
        rest is dispatched."""
        self.source.stop()
        if threading.current_thread() in self._threads:
            return
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
        self.pipeline.paused = True

    def resume(self) -> None:
        self.pipeline.paused = False

    @property
    def paused(self) -> bool:
        return self.pipeline.paused

    @property
    def thresholds(self) -> dict[str, float]:
        """Every keyword's threshold: the keyword set's one map."""
        return self.keyword_set.thresholds

    def set_threshold(self, keyword: str, threshold: float) -> None:
        """Change one keyword's threshold while listening; names compare as ``thresholds=`` does ("HEY" is "hey")."""
        self.keyword_set.set_threshold(keyword, threshold)

    def detections(self) -> Iterator[Detection]:
        """Detections as they happen, from the start of the stream until its end (blocking
        generator); at most MAX_UNREAD_DETECTIONS wait unread, the oldest make way."""
        while (item := self._results.get()) is not _END:
            yield item
        self._keep_result(_END)  # let a second iteration end too

    # -- worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        block = SAMPLE_RATE * self.settings.read_block_ms // 1000
        try:
            while True:
                self._ring.wait_for(self.pipeline.position + block, timeout=0.5)
                available = self._ring.write_index
                end_of_stream = self._ring.closed and available == self._ring.write_index
                events = self.pipeline.advance(available)
                if end_of_stream:
                    events += self.pipeline.flush()
                for event in events:
                    self._callbacks.put(event)
                self._update_stats()
                if end_of_stream:
                    break
        except Exception:
            log.exception("spotter worker failed")
        finally:
            self._callbacks.put(_END)

    def _captured(self) -> int:
        return self._ring.write_index

    def _update_stats(self) -> None:
        overrun, dropped = self._ring.overrun_samples, self.source.dropped_frames
        if overrun > self.stats.overrun_samples:
            log.warning("audio lost: %.2f s overwritten before it was processed (the model is slower than real time)",
                        (overrun - self.stats.overrun_samples) / SAMPLE_RATE)
        if dropped > self.stats.dropped_frames:
            log.warning("audio lost: the input reported %d overflow(s)", dropped - self.stats.dropped_frames)
        self.stats.overrun_samples, self.stats.dropped_frames = overrun, dropped
        # the ring reaches the pipeline past its count; a source of the user's own may not count
        self.stats.non_finite_samples = getattr(self.source, "non_finite_samples", 0)

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
