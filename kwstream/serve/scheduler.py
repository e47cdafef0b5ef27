"""The model's work for many connections: worker threads that own it, fed by one lane per connection.

Every connection pushes its decoded audio into its own ``Lane``, in order, and never waits for the
model: the event loop only appends to a deque. A lane with audio waiting is queued once in the
scheduler's ready queue; a worker takes the lane at its head, runs at most ``turn_s`` of its audio
through that connection's ``KeywordPipeline`` (VAD, windows, encoder, scorers, detector), hands the
events to the lane's ``deliver`` callback and, if more audio waits, queues the lane again at the
back. So the lanes take turns round robin: a client that sends an hour of audio at once gets the
same share of the model as one that streams in real time, and silence (which the VAD drops before
the encoder) costs almost nothing. One encoder serves every pipeline; with ``workers`` > 1 several
turns run at once (ONNX Runtime sessions may be run from several threads), never two of one lane.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kwstream.audio.io import SAMPLE_RATE
from kwstream.stream.pipeline import Event, KeywordPipeline

log = logging.getLogger(__name__)

TURN_S = 0.5
"""Most audio one turn of a lane runs before the next lane's turn."""


@dataclass
class Outcome:
    """What one turn made of one pipeline's audio."""

    pipeline: KeywordPipeline
    events: list[Event] = field(default_factory=list)
    flushed: bool = False
    """The stream ended and the pipeline was flushed: no more events will come from it."""
    error: str | None = None
    """The pipeline raised (the audio of this turn is lost; the lane and the server go on)."""


_FLUSH = None


class Lane:
    """One connection's audio waiting for the model, in order; thread-safe."""

    def __init__(self, scheduler: ModelScheduler, deliver: Callable[[list[Outcome]], None]) -> None:
        """``deliver``: called from a worker thread with each turn's outcomes (in order)."""
        self._scheduler = scheduler
        self._deliver = deliver
        self._lock = threading.Lock()
        self._items: deque[tuple[KeywordPipeline, np.ndarray | None]] = deque()
        self._queued = False
        self._closed = False
        self.backlog_samples = 0
        """Audio pushed but not yet run through its pipeline."""

    @property
    def backlog_s(self) -> float:
        return self.backlog_samples / SAMPLE_RATE

    def push(self, pipeline: KeywordPipeline, samples: np.ndarray) -> None:
        """Queue 16 kHz mono float32 samples for ``pipeline``."""
        if len(samples):
            self._put(pipeline, samples)

    def flush(self, pipeline: KeywordPipeline) -> None:
        """Queue the end of ``pipeline``'s stream (its outcome has ``flushed``)."""
        self._put(pipeline, _FLUSH)

    def close(self) -> None:
        """Drop what waits; nothing more is delivered once a running turn ends."""
        with self._lock:
            self._closed = True
            self._items.clear()
            self.backlog_samples = 0

    def _put(self, pipeline: KeywordPipeline, samples: np.ndarray | None) -> None:
        with self._lock:
            if self._closed:
                return
            self._items.append((pipeline, samples))
            self.backlog_samples += 0 if samples is None else len(samples)
            if self._queued:
                return
            self._queued = True
        self._scheduler.ready(self)

    def _take(self, max_samples: int) -> list[tuple[KeywordPipeline, np.ndarray | None]]:
        """The next turn's work: up to ``max_samples`` of audio (at least one item), consecutive
        pieces of one pipeline joined into one push."""
        work: list[tuple[KeywordPipeline, np.ndarray | None]] = []
        pieces: list[np.ndarray] = []
        taken = 0
        with self._lock:
            while self._items and taken < max_samples:
                pipeline, samples = self._items[0]
                if pieces and (samples is None or pipeline is not work[-1][0]):
                    break
                self._items.popleft()
                if samples is None:
                    work.append((pipeline, None))
                    break
                if not pieces:
                    work.append((pipeline, None))
                pieces.append(samples)
                taken += len(samples)
        if pieces:
            work[-1] = (work[-1][0], np.concatenate(pieces))
        return work

    def run_turn(self, max_samples: int) -> None:
        """Run the next turn (in a worker thread); queue the lane again if audio still waits."""
        outcomes: list[Outcome] = []
        for pipeline, samples in self._take(max_samples):
            outcome = Outcome(pipeline, flushed=samples is None)
            try:
                outcome.events = pipeline.flush() if samples is None else pipeline.push(samples)
            except Exception as exc:  # one stream's failure must not end the worker or the server
                log.error("pipeline failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
                outcome.error = str(exc) or type(exc).__name__
            outcomes.append(outcome)
            with self._lock:
                self.backlog_samples = max(0, self.backlog_samples - (0 if samples is None else len(samples)))
        with self._lock:
            closed = self._closed
            again = bool(self._items) and not closed
            self._queued = again
        if outcomes and not closed:
            try:
                self._deliver(outcomes)
            except Exception as exc:
                log.error("delivering events failed: %s", exc)
        if again:
            self._scheduler.ready(self)


class ModelScheduler:
    """Worker threads that run the lanes' turns, round robin; ``close()`` ends them."""

    def __init__(self, workers: int = 1, turn_s: float = TURN_S) -> None:
        if workers < 1:
            raise ValueError("need at least one worker")
        self.turn_samples = int(turn_s * SAMPLE_RATE)
        self._ready: queue.SimpleQueue[Lane | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"kwstream-model-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def lane(self, deliver: Callable[[list[Outcome]], None]) -> Lane:
        """A new connection's lane."""
        return Lane(self, deliver)

    def ready(self, lane: Lane) -> None:
        self._ready.put(lane)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the workers once their running turns end."""
        for _ in self._threads:
            self._ready.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while (lane := self._ready.get()) is not None:
            lane.run_turn(self.turn_samples)
