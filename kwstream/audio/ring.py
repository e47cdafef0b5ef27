"""A fixed-capacity ring of float32 samples indexed by absolute sample number.

One writer (the capture thread) and one reader (the worker). The writer never waits unless asked
to (file replay does, to apply backpressure); the microphone writer never blocks, and audio the
reader has not released yet when it is overwritten is counted as overrun, never lost silently.
"""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    """Holds the most recent ``capacity`` samples; sample ``n`` is the n-th sample ever written."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._buffer = np.zeros(capacity, dtype=np.float32)
        self._capacity = capacity
        self._write_index = 0
        self._reserved = 0  # end of the write in progress: its samples may be half-copied
        self._released = 0
        self._overrun_samples = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def write_index(self) -> int:
        """Absolute index of the next sample to be written (= samples written so far)."""
        return self._write_index

    @property
    def oldest_index(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self._write_index - self._capacity)

    @property
    def overrun_samples(self) -> int:
        """Samples overwritten before the reader released them."""
        return self._overrun_samples

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, samples: np.ndarray, block: bool = False) -> None:
        """Append samples. With ``block`` wait until the reader has released room for them."""
        n = len(samples)
        if n == 0:
            return
        if n > self._capacity:
            raise ValueError(f"cannot write {n} samples into a ring of {self._capacity}")
        if block:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closed or self._write_index + n - self._released <= self._capacity
                )
                if self._closed:
                    return
        with self._cond:
            self._reserved = self._write_index + n  # announce the overwrite before doing it
        start = self._write_index % self._capacity
        first = min(n, self._capacity - start)
        self._buffer[start : start + first] = samples[:first]
        self._buffer[: n - first] = samples[first:]
        with self._cond:
            new_index = self._write_index + n
            lost = new_index - self._capacity - self._released
            if lost > 0:
                self._overrun_samples += lost
                self._released += lost
            self._write_index = new_index
            self._cond.notify_all()

    def read(self, start: int, stop: int) -> tuple[int, np.ndarray]:
        """Copy samples ``[start, stop)``; returns ``(first_index, samples)``.

        If the oldest requested samples were already overwritten, the copy starts later and
        ``first_index > start``; the loss was counted as overrun when it was overwritten.
        """
        if stop > self._write_index:
            raise ValueError(f"sample {stop} not written yet (write index {self._write_index})")
        start = max(start, self._reserved - self._capacity)
        if stop <= start:
            return start, np.zeros(0, dtype=np.float32)
        first = start % self._capacity
        end = first + stop - start
        if end <= self._capacity:
            out = self._buffer[first:end].copy()
        else:
            out = np.concatenate((self._buffer[first:], self._buffer[: end - self._capacity]))
        # A write announced before or during our copy may have overwritten its head.
        valid_from = max(start, self._reserved - self._capacity)
        return valid_from, out[valid_from - start :]

    def release(self, upto: int) -> None:
        """Tell the writer that samples before ``upto`` are no longer needed."""
        with self._cond:
            if upto > self._released:
                self._released = min(upto, self._write_index)
                self._cond.notify_all()

    def wait_for(self, index: int, timeout: float | None = None) -> bool:
        """Wait until sample ``index - 1`` is written or the ring is closed; True if available."""
        with self._cond:
            self._cond.wait_for(lambda: self._write_index >= index or self._closed, timeout)
            return self._write_index >= index

    def close(self) -> None:
        """Mark the end of the stream: waiting readers and writers return."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
