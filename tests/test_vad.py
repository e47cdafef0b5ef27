"""VadGate on real recorded speech (Free Spoken Digit Dataset words) placed at known positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
import webrtcvad

from kwstream.audio.convert import float_to_pcm16
from kwstream.stream.vad import SpeechEnd, SpeechStart, VadGate, VadSettings

RATE = 16000
ASSETS = Path(__file__).resolve().parent.parent / "kwstream" / "assets" / "audio"
SHARED = Path("/work/shared/data/fsdd/recordings")
WORDS = ("7_jackson_0", "3_theo_0", "0_lucas_1", "9_nicolas_2")

SETTINGS = VadSettings()
FRAME = RATE * SETTINGS.frame_ms // 1000  # 480
PREROLL = RATE * SETTINGS.preroll_ms // 1000  # 4800
HANGOVER = RATE * SETTINGS.hangover_ms // 1000  # 6400
HANGOVER_FRAMES = -(-SETTINGS.hangover_ms // SETTINGS.frame_ms)  # whole frames: 14
# webrtcvad keeps flagging frames as speech for a few frames after speech stops (its own
# overhang: at most 3 frames for modes 2 and 3 with 30 ms frames, WebRTC vad_core.c
# kOverHangMax2AGG/VAG = {9, 5, 3}); the gate's hangover comes on top of that.
WEBRTC_OVERHANG = 3 * FRAME


def word_path(name: str) -> Path | None:
    for path in (ASSETS / f"fsdd_{name}.wav", SHARED / f"{name}.wav"):
        if path.exists():
            return path
    return None


def load_word(name: str) -> np.ndarray:
    path = word_path(name)
    if path is None:
        pytest.skip(f"no FSDD recording {name!r}: neither {ASSETS} nor {SHARED} has it")
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 8000
    return soxr.resample(audio, 8000, RATE).astype(np.float32)


def quiet(seconds: float, rng: np.random.Generator, dbfs: float | None = -60.0) -> np.ndarray:
    """Digital silence plus, unless ``dbfs`` is None, white noise of that RMS level."""
    n = int(seconds * RATE)
    if dbfs is None:
        return np.zeros(n, np.float32)
    return (rng.normal(0.0, 10 ** (dbfs / 20), n)).astype(np.float32)


def two_word_stream(first: str, second: str, seed: int = 0):
    """1.0 s quiet, word, 1.5 s quiet, word, 1.0 s quiet; returns audio and the words' spans."""
    rng = np.random.default_rng(seed)
    a, b = load_word(first), load_word(second)
    parts = [quiet(1.0, rng), a, quiet(1.5, rng), b, quiet(1.0, rng)]
    on_a = len(parts[0])
    on_b = on_a + len(a) + len(parts[2])
    return np.concatenate(parts), [(on_a, on_a + len(a)), (on_b, on_b + len(b))]


def run(audio: np.ndarray, chunk: int | None = None, settings: VadSettings = SETTINGS) -> list:
    gate = VadGate(settings)
    events = []
    if chunk is None:
        events += gate.push(audio)
    else:
        for i in range(0, len(audio), chunk):
            events += gate.push(audio[i : i + chunk])
    return events + gate.flush()


def spans(events: list) -> list[tuple[int, int]]:
    """Pair alternating SpeechStart/SpeechEnd events, checking they alternate."""
    out = []
    for i in range(0, len(events), 2):
        start, end = events[i], events[i + 1]
        assert isinstance(start, SpeechStart) and isinstance(end, SpeechEnd), events
        assert start.sample < end.sample
        out.append((start.sample, end.sample))
    return out


PAIRS = [("7_jackson_0", "3_theo_0"), ("3_theo_0", "7_jackson_0"), ("0_lucas_1", "9_nicolas_2")]


@pytest.mark.parametrize("first,second", PAIRS)
def test_two_words_give_exactly_two_spans(first, second):
    audio, words = two_word_stream(first, second)
    found = spans(run(audio))
    assert len(found) == 2, found
    for (start, end), (onset, offset) in zip(found, words):
        assert start < offset and end > onset  # each span holds its word


def span_of(found: list[tuple[int, int]], word: tuple[int, int]) -> tuple[int, int]:
    holding = [s for s in found if s[0] < word[1] and s[1] > word[0]]
    assert len(holding) == 1, (found, word)
    return holding[0]


@pytest.mark.parametrize("first,second", PAIRS)
def test_speech_start_keeps_the_onset_and_at_most_the_preroll_before_it(first, second):
    audio, words = two_word_stream(first, second)
    found = spans(run(audio))
    for onset, offset in words:
        start, _ = span_of(found, (onset, offset))
        assert start <= onset
        # The first voiced frame starts at most one frame before the true onset; pre-roll is
        # "audio kept before the first voiced frame".
        assert start >= onset - PREROLL - FRAME, (start, onset)


@pytest.mark.parametrize("first,second", PAIRS)
def test_speech_end_keeps_the_word_end_and_at_most_the_hangover_after_it(first, second):
    audio, words = two_word_stream(first, second)
    found = spans(run(audio))
    for onset, offset in words:
        _, end = span_of(found, (onset, offset))
        assert end >= offset
        assert end <= offset + HANGOVER + WEBRTC_OVERHANG + 2 * FRAME, (end, offset)


def frame_decisions(audio: np.ndarray) -> list[bool]:
    """webrtcvad's own per-frame decisions, from a fresh instance, as the gate's frames see them,
    overruled where the frame is quieter than the gate's energy floor."""
    vad = webrtcvad.Vad(SETTINGS.aggressiveness)
    pcm = float_to_pcm16(audio)
    floor = 10 ** (SETTINGS.min_speech_dbfs / 20)
    return [
        vad.is_speech(pcm[i : i + FRAME].tobytes(), RATE) and float(np.sqrt(np.mean(audio[i : i + FRAME] ** 2))) >= floor
        for i in range(0, len(pcm) - FRAME + 1, FRAME)
    ]


@pytest.mark.parametrize("first,second", PAIRS)
def test_preroll_and_hangover_are_measured_from_the_voiced_frames(first, second):
    """For the second word (far from the stream's start) the span is exactly: first voiced frame
    minus pre-roll, to the end of the last voiced frame plus the hangover frames."""
    audio, words = two_word_stream(first, second)
    onset, offset = words[1]
    voiced = frame_decisions(audio)
    search_from = (onset - PREROLL) // FRAME  # the 1.5 s gap before it is unvoiced by then
    assert not any(voiced[search_from - 20 : search_from])
    first_voiced = next(i for i in range(search_from, len(voiced)) if voiced[i])
    hangover_frames = -(-SETTINGS.hangover_ms // SETTINGS.frame_ms)  # rounded up: at least hangover_ms
    last_voiced = first_voiced
    while any(voiced[last_voiced + 1 : last_voiced + 1 + hangover_frames]):
        last_voiced += 1 + voiced[last_voiced + 1 :].index(True)
    expected = (first_voiced * FRAME - PREROLL, (last_voiced + 1 + hangover_frames) * FRAME)
    assert span_of(spans(run(audio)), words[1]) == expected


@pytest.mark.parametrize("dbfs", [None, -80.0, -60.0])
def test_silence_and_low_noise_give_no_events(dbfs):
    audio = quiet(3.0, np.random.default_rng(7), dbfs)
    assert run(audio) == []


@pytest.mark.parametrize("chunk", [160, 480, 1000, 7777])
def test_events_do_not_depend_on_chunk_size(chunk):
    audio, _ = two_word_stream("0_lucas_1", "7_jackson_0", seed=5)
    whole = run(audio)
    assert len(whole) >= 4
    assert run(audio, chunk) == whole


def test_chunks_of_random_sizes_give_the_same_events():
    audio, _ = two_word_stream("9_nicolas_2", "3_theo_0", seed=6)
    whole = run(audio)
    gate = VadGate()
    events = []
    rng = np.random.default_rng(11)
    i = 0
    while i < len(audio):
        n = int(rng.integers(0, 2000))
        events += gate.push(audio[i : i + n])
        i += n
    assert events + gate.flush() == whole


def test_reset_forgets_a_half_spoken_word():
    word = load_word("7_jackson_0")
    gate = VadGate()
    gate.push(np.concatenate([np.zeros(8000, np.float32), word[: len(word) // 2]]))
    gate.reset()
    assert not gate.in_speech
    assert gate.push(np.zeros(2 * RATE, np.float32)) == []
    assert gate.flush() == []


def test_reset_restarts_sample_positions_at_zero():
    word = load_word("0_lucas_1")
    audio = np.concatenate([np.zeros(RATE, np.float32), word, np.zeros(RATE, np.float32)])
    gate = VadGate()
    gate.push(np.zeros(12345, np.float32))
    gate.reset()
    after_reset = gate.push(audio) + gate.flush()
    assert after_reset == run(audio)
    start, end = spans(after_reset)[0]
    assert RATE - PREROLL - 3 * FRAME <= start <= RATE  # counted from the reset, not from 12345


@pytest.mark.parametrize("quiet_after", [7, 4 * FRAME + 7, 10 * FRAME])
def test_flush_closes_an_open_span_where_quiet_after_the_stream_would(quiet_after):
    word = load_word("9_nicolas_2")
    audio = np.concatenate([np.zeros(RATE, np.float32), word, np.zeros(quiet_after, np.float32)])
    gate = VadGate()
    events = gate.push(audio)
    assert [type(e) for e in events] == [SpeechStart]
    assert gate.in_speech
    live = VadGate()
    followed_by_quiet = live.push(np.concatenate([audio, np.zeros(RATE, np.float32)]))
    end = gate.flush()
    assert end == followed_by_quiet[1:] and [type(e) for e in end] == [SpeechEnd]
    assert len(audio) < end[0].sample <= len(audio) + (HANGOVER_FRAMES + 1) * FRAME  # past the last sample (its partial frame too)
    assert gate.voiced_samples <= len(audio)  # the quiet after the stream is not heard audio
    assert gate.flush() == []


def test_a_stream_that_opens_on_a_word_starts_its_span_a_preroll_before_it():
    word = load_word("7_jackson_0")
    gate = VadGate()
    events = gate.push(np.concatenate([word, np.zeros(RATE, np.float32)]))
    assert events[0] == SpeechStart(-PREROLL)  # the quiet before the stream, as a live stream would have had
    later = VadGate()
    events = later.push(np.concatenate([np.zeros(RATE, np.float32), word, np.zeros(RATE, np.float32), word]))
    starts = [e.sample for e in events if isinstance(e, SpeechStart)]
    assert len(starts) == 2 and all(s > 0 for s in starts)  # a stream that opens quiet: its spans start in it, as ever


@pytest.mark.parametrize("name", ["1_theo_5", "1_theo_11"])
def test_a_short_word_that_opens_a_recording_opens_a_span(name: str):
    word = load_word(name)  # 0.22 s: a warm-up of 150 ms (webrtcvad's first frames held back) lost 1_theo_11
    gate = VadGate()
    events = gate.push(word) + gate.flush()
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd] and events[0] == SpeechStart(-PREROLL)


def test_a_flushed_stream_takes_no_more_audio_until_reset():
    word = load_word("9_nicolas_2")
    gate = VadGate()
    gate.push(np.concatenate([np.zeros(RATE, np.float32), word]))
    first = gate.flush()
    with pytest.raises(RuntimeError, match="reset"):
        gate.push(word)  # its span ended past its last sample: more audio cannot follow on
    assert gate.flush() == []
    gate.reset()
    assert gate.push(np.concatenate([np.zeros(RATE, np.float32), word])) + gate.flush() == [
        SpeechStart(next(e.sample for e in VadGate().push(np.concatenate([np.zeros(RATE, np.float32), word])))), *first]


def test_flush_without_open_span_gives_nothing():
    gate = VadGate()
    gate.push(np.zeros(RATE, np.float32))
    assert gate.flush() == []


def test_disabled_vad_passes_everything_as_one_span():
    audio, _ = two_word_stream("3_theo_0", "0_lucas_1")
    gate = VadGate(VadSettings(enabled=False))
    events = []
    for i in range(0, len(audio), 1000):
        events += gate.push(audio[i : i + 1000])
    assert events == [SpeechStart(-PREROLL)]
    assert gate.flush() == [SpeechEnd(len(audio) + HANGOVER_FRAMES * FRAME)]
    assert gate.voiced_samples == len(audio)


def test_disabled_vad_on_silence_still_opens_at_the_start():
    gate = VadGate(VadSettings(enabled=False))
    assert gate.push(np.zeros(100, np.float32)) == [SpeechStart(-PREROLL)]
    assert gate.push(np.zeros(50, np.float32)) == []
    assert gate.flush() == [SpeechEnd(150 + HANGOVER_FRAMES * FRAME)]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(aggressiveness=-1),
        dict(aggressiveness=4),
        dict(frame_ms=0),
        dict(frame_ms=25),
        dict(frame_ms=40),
    ],
)
def test_invalid_webrtc_settings_raise(kwargs):
    with pytest.raises(ValueError):
        VadSettings(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(trigger_frames=0),  # would open a span on digital silence
        dict(trigger_frames=4, trigger_window_frames=3),  # could never open a span
        dict(trigger_window_frames=0),
        dict(preroll_ms=-30),  # a start after the first voiced frame
        dict(hangover_ms=-30),
    ],
)
def test_impossible_trigger_and_timing_settings_raise(kwargs):
    with pytest.raises(ValueError):
        VadSettings(**kwargs)


@pytest.mark.parametrize("aggressiveness", range(4))
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_every_valid_mode_and_frame_finds_the_two_words(aggressiveness, frame_ms):
    audio, words = two_word_stream(*PAIRS[0])
    found = spans(run(audio, settings=VadSettings(aggressiveness=aggressiveness, frame_ms=frame_ms)))
    assert len(found) == 2, found
    for (start, end), (onset, offset) in zip(found, words):
        assert start <= onset and end >= offset, (found, words)
