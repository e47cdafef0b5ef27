"""RingBuffer: absolute indexing, wrap-around, overrun accounting, blocking, closing, threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from kwstream.audio.ring import RingBuffer


def ramp(start: int, stop: int) -> np.ndarray:
    """Samples whose value is their absolute index (mod 2**20, exact in float32)."""
    return (np.arange(start, stop) % 2**20).astype(np.float32)


def start_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def start_blocking_writer(ring: RingBuffer, samples: np.ndarray) -> tuple[threading.Event, threading.Thread]:
    """A thread making a blocking write of ``samples``; the event is set once the write returns."""
    done = threading.Event()

    def writer():
        ring.write(samples, block=True)
        done.set()

    return done, start_thread(writer)


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        RingBuffer(0)
    with pytest.raises(ValueError):
        RingBuffer(-5)


def test_write_then_read_by_absolute_index():
    ring = RingBuffer(16)
    ring.write(ramp(0, 5))
    ring.write(ramp(5, 12))
    assert ring.write_index == 12
    assert ring.oldest_index == 0
    first, samples = ring.read(3, 9)
    assert first == 3
    np.testing.assert_array_equal(samples, [3, 4, 5, 6, 7, 8])


def test_empty_write_changes_nothing():
    ring = RingBuffer(4)
    ring.write(np.zeros(0, np.float32))
    assert ring.write_index == 0


def test_write_larger_than_capacity_raises():
    ring = RingBuffer(4)
    with pytest.raises(ValueError):
        ring.write(ramp(0, 5))


def test_read_spanning_the_physical_end_wraps_around():
    ring = RingBuffer(8)
    ring.write(ramp(0, 6))
    ring.release(6)
    ring.write(ramp(6, 12))  # occupies physical slots 6, 7, 0, 1, 2, 3
    first, samples = ring.read(6, 12)
    assert first == 6
    np.testing.assert_array_equal(samples, [6, 7, 8, 9, 10, 11])
    first, samples = ring.read(4, 12)  # the whole ring: oldest held sample is 12 - 8 = 4
    assert first == 4
    np.testing.assert_array_equal(samples, np.arange(4, 12))


def test_reading_unwritten_samples_raises():
    ring = RingBuffer(8)
    ring.write(ramp(0, 5))
    with pytest.raises(ValueError):
        ring.read(0, 6)
    with pytest.raises(ValueError):
        ring.read(6, 7)
    first, samples = ring.read(0, 5)  # exactly up to the write index is fine
    assert (first, len(samples)) == (0, 5)


def test_empty_range_reads_nothing():
    ring = RingBuffer(8)
    ring.write(ramp(0, 5))
    first, samples = ring.read(3, 3)
    assert first == 3
    assert len(samples) == 0


def test_overrun_counts_exactly_the_unreleased_samples_overwritten():
    ring = RingBuffer(10)
    ring.write(ramp(0, 10))
    assert ring.overrun_samples == 0  # filled, nothing overwritten yet
    ring.write(ramp(10, 15))  # overwrites 0..4, none released
    assert ring.overrun_samples == 5
    ring.write(ramp(15, 18))  # overwrites 5..7
    assert ring.overrun_samples == 8
    ring.release(12)  # samples 8..11 released (0..7 are gone anyway)
    ring.write(ramp(18, 22))  # overwrites 8..11: all released
    assert ring.overrun_samples == 8
    ring.write(ramp(22, 26))  # overwrites 12..15: unreleased
    assert ring.overrun_samples == 12


def test_read_after_overrun_starts_at_the_oldest_sample_still_held():
    ring = RingBuffer(10)
    ring.write(ramp(0, 10))
    ring.write(ramp(10, 17))  # samples 0..6 overwritten
    assert ring.oldest_index == 7
    first, samples = ring.read(2, 15)
    assert first == 7
    np.testing.assert_array_equal(samples, np.arange(7, 15))
    first, samples = ring.read(0, 5)  # entirely lost
    assert len(samples) == 0
    assert first >= 5


def test_released_samples_are_overwritten_without_overrun():
    ring = RingBuffer(10)
    for start in range(0, 100, 7):
        ring.write(ramp(start, start + 7))
        ring.release(start + 7)
    assert ring.overrun_samples == 0
    first, samples = ring.read(95, 105)
    assert first == 95
    np.testing.assert_array_equal(samples, np.arange(95, 105))


def test_release_beyond_write_index_is_clamped():
    ring = RingBuffer(10)
    ring.write(ramp(0, 10))
    ring.release(1000)  # only 10 written: releases 0..9, not future samples
    ring.write(ramp(10, 20))  # overwrites 0..9: released
    assert ring.overrun_samples == 0
    ring.write(ramp(20, 25))  # overwrites 10..14: never released
    assert ring.overrun_samples == 5


def test_blocking_write_waits_for_release():
    ring = RingBuffer(8)
    ring.write(ramp(0, 8))
    done, thread = start_blocking_writer(ring, ramp(8, 12))
    assert not done.wait(0.1)  # no room: 8 held + 4 > 8
    assert ring.write_index == 8
    ring.release(3)  # room for 3, not 4
    assert not done.wait(0.1)
    assert ring.write_index == 8
    ring.release(4)
    assert done.wait(2.0)
    thread.join(2.0)
    assert ring.write_index == 12
    assert ring.overrun_samples == 0
    first, samples = ring.read(4, 12)
    assert first == 4
    np.testing.assert_array_equal(samples, np.arange(4, 12))


def test_blocking_write_with_room_does_not_wait():
    ring = RingBuffer(8)
    t0 = time.monotonic()
    ring.write(ramp(0, 8), block=True)
    assert time.monotonic() - t0 < 0.5
    assert ring.write_index == 8


def test_close_wakes_a_blocked_writer_without_writing():
    ring = RingBuffer(8)
    ring.write(ramp(0, 8))
    done, thread = start_blocking_writer(ring, ramp(8, 10))
    assert not done.wait(0.1)
    ring.close()
    assert done.wait(2.0)
    thread.join(2.0)
    assert ring.closed
    assert ring.write_index == 8
    assert ring.overrun_samples == 0


def test_close_wakes_a_waiting_reader():
    ring = RingBuffer(8)
    result = []

    def reader():
        result.append(ring.wait_for(5, timeout=5.0))

    thread = start_thread(reader)
    time.sleep(0.05)
    t0 = time.monotonic()
    ring.close()
    thread.join(2.0)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 1.0
    assert result == [False]  # closed, sample 4 never written


def test_wait_for_returns_at_once_when_available():
    ring = RingBuffer(8)
    ring.write(ramp(0, 5))
    t0 = time.monotonic()
    assert ring.wait_for(5, timeout=2.0) is True  # sample 4 is written
    assert ring.wait_for(0) is True
    assert time.monotonic() - t0 < 0.5


def test_wait_for_times_out_when_not_available():
    ring = RingBuffer(8)
    ring.write(ramp(0, 5))
    t0 = time.monotonic()
    assert ring.wait_for(6, timeout=0.1) is False
    assert 0.09 <= time.monotonic() - t0 < 1.0


def test_wait_for_wakes_when_the_writer_writes():
    ring = RingBuffer(8)
    result = []

    def reader():
        result.append(ring.wait_for(3, timeout=5.0))

    thread = start_thread(reader)
    time.sleep(0.05)
    ring.write(ramp(0, 2))
    time.sleep(0.05)
    assert thread.is_alive()  # 2 written, 3 needed
    ring.write(ramp(2, 4))
    thread.join(2.0)
    assert result == [True]


def test_wait_for_after_close_reports_available_samples():
    ring = RingBuffer(8)
    ring.write(ramp(0, 4))
    ring.close()
    assert ring.wait_for(4, timeout=0.5) is True
    assert ring.wait_for(5, timeout=0.5) is False


class _ReadsMidWrite(np.ndarray):
    """Samples that let a reader run after the writer copied the first part into the ring but
    before it published the new write index: a point where a real thread switch can happen."""

    on_second_part = None  # set on the class: a plain function, called once

    def __getitem__(self, key):
        callback = type(self).on_second_part
        if isinstance(key, slice) and key.start and callback is not None:
            type(self).on_second_part = None
            callback()
        return super().__getitem__(key)


def test_read_during_an_overwriting_write_never_returns_new_samples_under_old_indices():
    ring = RingBuffer(8)
    ring.write(ramp(0, 8))  # nothing released: the reader still needs 0..7
    reads = []
    # The writer overruns the reader: writing 8..13 starts at physical slot 0 and fits without
    # wrapping, so its second part is empty; the reader runs after slots 0..5 already hold samples
    # 8..13 but before the write index moves on. A right answer is (6, [6, 7]) (or any later
    # first index whose values equal their indices), never sample 8 presented as sample 0.
    incoming = ramp(8, 14).view(_ReadsMidWrite)
    _ReadsMidWrite.on_second_part = lambda: reads.append(ring.read(0, 8))
    ring.write(incoming)
    assert len(reads) == 1
    first, samples = reads[0]
    # Whatever the ring returns must be the samples at those indices (value == index).
    np.testing.assert_array_equal(samples, np.arange(first, first + len(samples)))


def test_threaded_writer_and_reader_see_every_sample_intact():
    """A writer thread writes a ramp in random chunks; the reader keeps up and releases."""
    total = 2**20  # 16 times the ring
    ring = RingBuffer(2**16)
    rng = np.random.default_rng(1234)
    chunks = []
    position = 0
    while position < total:
        n = min(int(rng.integers(1, 1025)), total - position)
        chunks.append((position, position + n))
        position += n

    def writer():
        for start, stop in chunks:
            ring.write(ramp(start, stop))
            time.sleep(0.0001)  # a live source: the reader gets the interpreter between chunks
        ring.close()

    thread = start_thread(writer)
    cursor = 0
    reads = 0
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        ring.wait_for(cursor + 1, timeout=0.5)
        available = ring.write_index
        if available > cursor:
            first, samples = ring.read(cursor, available)
            assert first == cursor
            np.testing.assert_array_equal(samples, ramp(cursor, available))
            cursor = available
            ring.release(cursor)
            reads += 1
        elif ring.closed and ring.write_index == cursor:
            break
    thread.join(5.0)
    assert cursor == total
    assert ring.overrun_samples == 0
    assert reads > 1
