"""Sliding windows over voiced spans, in absolute samples.

Inside a span a window ends every ``hop_samples``. Early in a span the windows grow from the span's
start until they reach ``window_samples``, so a keyword said right at the start of speech is seen
one hop after it ends, not a whole window later; after that they slide. When the span closes a
last window ends exactly at its end, so every voiced sample is covered.
"""

from __future__ import annotations

from dataclasses import dataclass

from kwstream.stream.vad import SpeechEnd, SpeechStart, VadEvent


@dataclass(frozen=True)
class Window:
    start_sample: int
    stop_sample: int
    span: int
    """Which speech span (counted from 0) the window belongs to."""


class Windower:
    """Turns VAD events and the amount of audio available into windows to encode."""

    def __init__(self, window_samples: int, hop_samples: int) -> None:
        if not 0 < hop_samples <= window_samples:
            raise ValueError("need 0 < hop <= window")
        self.window_samples = window_samples
        self.hop_samples = hop_samples
        self.reset()

    def reset(self) -> None:
        self._span_start: int | None = None
        self._span = -1
        self._next_stop = 0
        self._covered_to = 0

    def push(self, events: list[VadEvent], available: int) -> list[Window]:
        """Apply ``events`` (in order) given audio is written up to sample ``available``."""
        windows: list[Window] = []
        for event in events:
            if isinstance(event, SpeechStart):
                self._span_start = event.sample
                self._span += 1
                # a span that starts in the quiet before the stream (``VadGate``) keeps the hops of one starting at its first
                # sample: the quiet only lengthens its first windows
                self._next_stop = max(event.sample, 0) + self.hop_samples
                self._covered_to = event.sample
            elif isinstance(event, SpeechEnd) and self._span_start is not None:
                windows += self._slide(event.sample)
                if self._covered_to < event.sample:
                    start = max(self._span_start, event.sample - self.window_samples)
                    windows.append(Window(start, event.sample, self._span))
                self._span_start = None
        if self._span_start is not None:
            windows += self._slide(available)
        return windows

    def _slide(self, limit: int) -> list[Window]:
        windows = []
        while self._next_stop <= limit:
            start = max(self._span_start, self._next_stop - self.window_samples)
            windows.append(Window(start, self._next_stop, self._span))
            self._covered_to = self._next_stop
            self._next_stop += self.hop_samples
        return windows

    @property
    def oldest_needed(self) -> int | None:
        """The earliest sample a future window may need, or None when no span is open."""
        if self._span_start is None:
            return None
        # the last window of the span ends past what is covered, so it starts after this
        return max(self._span_start, self._covered_to - self.window_samples + 1)
