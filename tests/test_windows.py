"""Windower: growing then sliding windows over voiced spans, in absolute samples."""

from __future__ import annotations

import pytest

from kwstream.stream.vad import SpeechEnd, SpeechStart
from kwstream.stream.windows import Window, Windower


def bounds(windows: list[Window]) -> list[tuple[int, int]]:
    return [(w.start_sample, w.stop_sample) for w in windows]


# window=1000, hop=250, span [500, 3100), worked by hand: stops every 250 from 500 + 250;
# starts stay at the span start until the window is 1000 long (stop 1500), then slide; the span
# ends at 3100, between hops, so a last window [2100, 3100) ends exactly there.
HAND_WORKED = [
    (500, 750),
    (500, 1000),
    (500, 1250),
    (500, 1500),
    (750, 1750),
    (1000, 2000),
    (1250, 2250),
    (1500, 2500),
    (1750, 2750),
    (2000, 3000),
    (2100, 3100),
]


def test_hand_worked_span_all_at_once():
    windower = Windower(1000, 250)
    windows = windower.push([SpeechStart(500), SpeechEnd(3100)], available=3100)
    assert bounds(windows) == HAND_WORKED
    assert all(w.span == 0 for w in windows)


def test_hand_worked_span_with_end_arriving_later():
    windower = Windower(1000, 250)
    windows = windower.push([SpeechStart(500)], available=3100)
    assert bounds(windows) == HAND_WORKED[:-1]
    windows += windower.push([SpeechEnd(3100)], available=3100)
    assert bounds(windows) == HAND_WORKED


def test_span_ending_on_a_hop_gets_no_extra_window():
    windower = Windower(1000, 250)
    windows = windower.push([SpeechStart(500), SpeechEnd(3000)], available=3000)
    assert bounds(windows) == HAND_WORKED[:-1]  # (2000, 3000) already ends at the span end


def test_span_shorter_than_a_hop_gets_one_window_over_all_of_it():
    windower = Windower(1000, 250)
    windows = windower.push([SpeechStart(500), SpeechEnd(600)], available=600)
    assert bounds(windows) == [(500, 600)]


def test_hop_equal_to_window_tiles_the_span():
    windower = Windower(400, 400)
    windows = windower.push([SpeechStart(0), SpeechEnd(1000)], available=1000)
    assert bounds(windows) == [(0, 400), (400, 800), (600, 1000)]


def test_windows_never_exceed_the_window_length_nor_start_before_the_span():
    windower = Windower(1000, 250)
    windows = windower.push([SpeechStart(123), SpeechEnd(5432)], available=5432)
    for w in windows:
        assert 123 <= w.start_sample < w.stop_sample <= 5432
        assert w.stop_sample - w.start_sample <= 1000


def covered(windows: list[Window]) -> set[int]:
    samples: set[int] = set()
    for w in windows:
        samples.update(range(w.start_sample, w.stop_sample))
    return samples


@pytest.mark.parametrize("window,hop", [(1000, 250), (1000, 1000), (700, 300), (16, 5)])
@pytest.mark.parametrize("start,end", [(0, 1), (500, 3100), (37, 4001), (1000, 1999)])
def test_every_voiced_sample_is_covered(window, hop, start, end):
    windower = Windower(window, hop)
    windows = windower.push([SpeechStart(start)], available=start + (end - start) // 2)
    windows += windower.push([SpeechEnd(end)], available=end)
    assert covered(windows) == set(range(start, end))
    assert windows[-1].stop_sample == end


def test_windows_only_cover_available_audio_while_the_span_is_open():
    windower = Windower(1000, 250)
    assert windower.push([SpeechStart(500)], available=600) == []  # first stop would be 750
    windows = windower.push([], available=1100)
    assert bounds(windows) == [(500, 750), (500, 1000)]
    windows = windower.push([], available=1249)
    assert windows == []
    windows = windower.push([], available=1250)
    assert bounds(windows) == [(500, 1250)]


def test_small_availability_steps_give_the_same_windows_as_one_step():
    events = [SpeechStart(321), SpeechEnd(4567), SpeechStart(6000), SpeechEnd(9876)]
    whole = Windower(1000, 250).push(events, available=10000)
    windower = Windower(1000, 250)
    pieces = []
    pending = list(events)
    for available in range(0, 10001, 37):
        due = [e for e in pending if e.sample <= available]
        pending = pending[len(due) :]
        pieces += windower.push(due, available)
    pieces += windower.push(pending, 10000)
    assert pieces == whole


def test_span_numbers_count_spans_from_zero():
    windower = Windower(1000, 250)
    windows = windower.push([SpeechStart(0), SpeechEnd(600), SpeechStart(2000), SpeechEnd(2100)], 2100)
    windows += windower.push([SpeechStart(5000), SpeechEnd(5300)], 5300)
    assert [(bounds([w])[0], w.span) for w in windows] == [
        ((0, 250), 0),
        ((0, 500), 0),
        ((0, 600), 0),
        ((2000, 2100), 1),
        ((5000, 5250), 2),
        ((5000, 5300), 2),
    ]


def test_second_span_starts_growing_again_from_its_start():
    windower = Windower(1000, 250)
    windower.push([SpeechStart(0), SpeechEnd(3000)], 3000)
    windows = windower.push([SpeechStart(4000)], 4600)
    assert bounds(windows) == [(4000, 4250), (4000, 4500)]


def test_no_windows_outside_a_span():
    windower = Windower(1000, 250)
    assert windower.push([], available=10000) == []
    windower.push([SpeechStart(0), SpeechEnd(300)], 300)
    assert windower.push([], available=20000) == []


def test_oldest_needed_is_none_outside_a_span():
    windower = Windower(1000, 250)
    assert windower.oldest_needed is None
    windower.push([SpeechStart(500), SpeechEnd(800)], 800)
    assert windower.oldest_needed is None


def test_oldest_needed_is_the_span_start_while_windows_grow():
    windower = Windower(1000, 250)
    windower.push([SpeechStart(500)], available=1100)
    assert windower.oldest_needed == 500


# The span's end is only known later; until then oldest_needed promises no window will need
# audio before it (the spotter releases the ring up to it).
@pytest.mark.parametrize("available,end", [(3100, 3100), (1760, 1990)])
def test_no_future_window_starts_before_oldest_needed(available, end):
    windower = Windower(1000, 250)
    windower.push([SpeechStart(500)], available=available)
    oldest = windower.oldest_needed
    later = windower.push([], available=end) + windower.push([SpeechEnd(end)], available=end)
    assert later, "the span's end must produce at least its last window"
    assert all(w.start_sample >= oldest for w in later), (oldest, bounds(later))


def test_reset_forgets_the_open_span_and_the_span_count():
    windower = Windower(1000, 250)
    windower.push([SpeechStart(0), SpeechEnd(600), SpeechStart(1000)], 1600)
    windower.reset()
    assert windower.oldest_needed is None
    assert windower.push([], available=5000) == []
    windows = windower.push([SpeechStart(100), SpeechEnd(300)], 300)
    assert [(bounds([w])[0], w.span) for w in windows] == [((100, 300), 0)]


def test_end_without_start_is_ignored():
    windower = Windower(1000, 250)
    assert windower.push([SpeechEnd(800)], available=800) == []


@pytest.mark.parametrize("window,hop", [(1000, 0), (1000, -1), (1000, 1001), (0, 0)])
def test_invalid_window_and_hop_raise(window, hop):
    with pytest.raises(ValueError):
        Windower(window, hop)


def test_a_span_starting_in_the_quiet_before_the_stream_keeps_the_hops_of_one_starting_at_its_first_sample():
    windower = Windower(window_samples=1000, hop_samples=250)
    from_quiet = windower.push([SpeechStart(-300), SpeechEnd(1600)], available=1600)
    windower.reset()
    from_start = windower.push([SpeechStart(0), SpeechEnd(1600)], available=1600)
    assert [w.stop_sample for w in from_quiet] == [w.stop_sample for w in from_start] == [250, 500, 750, 1000, 1250, 1500, 1600]
    assert [w.start_sample for w in from_quiet[:4]] == [-300, -300, -250, 0]  # the quiet only lengthens the first windows
    assert [w.start_sample for w in from_quiet[4:]] == [w.start_sample for w in from_start[4:]]
