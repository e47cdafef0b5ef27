"""The whole pipeline on real speech, through the same file and stdin sources a user has.

The model is a tiny randomly initialised wav2vec2 (the bundled trained model asserts accuracy in its
own tests), so these tests check wiring, timing and robustness, not which words are found: with a
near-zero threshold every keyword fires in every speech span, and every detection must lie where
speech was, in order, with the same result whatever the audio's block size, rate or container.
The checks of what a new user types, at the end, run the bundled model on the demo recording.
"""

from __future__ import annotations

import io
import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from kwstream import AudioFile, Encoder, Detection, EncoderSettings, Keyword, KeywordError, RawStdin, Spotter
from kwstream.audio.ring import RingBuffer
from kwstream.model.resolve import BUNDLED_MODEL_DIR
from kwstream.spotter import SpotterSettings
from kwstream.stream.vad import VadSettings

from conftest import ASSET_AUDIO, SAMPLE_RATE, SpeechStream

KEYWORDS = ["hey", "stop", "hey computer"]
FIRE_ON_ANYTHING = 0.001
"""Below any score the random model gives: its 14-token "hey computer" falls under 0.01 in some speech
spans once the frames after the last letter are charged their end weight."""


@pytest.fixture(scope="module")
def encoder(tiny_model: Path) -> Encoder:
    return Encoder(EncoderSettings(model=str(tiny_model)))


def run(encoder: Encoder, source, keywords=KEYWORDS, **kwargs) -> tuple[list[Detection], Spotter]:
    keywords = [Keyword(k, FIRE_ON_ANYTHING) for k in keywords]
    spotter = Spotter(keywords, source=source, encoder=encoder, **kwargs)
    with spotter:
        found = list(spotter.detections())
    return found, spotter


def key(d: Detection) -> tuple:
    return d.keyword, round(d.score, 5), round(d.start, 3), round(d.end, 3)


def test_detections_lie_in_speech_and_in_order(encoder, speech_stream: SpeechStream, tmp_path):
    found, spotter = run(encoder, AudioFile(speech_stream.write(tmp_path / "s.wav"), realtime=False))
    vad = VadSettings()
    margin = (vad.preroll_ms + vad.hangover_ms) / 1000 + 0.1
    spans = [(a / SAMPLE_RATE - margin, b / SAMPLE_RATE + margin) for a, b in speech_stream.word_spans]
    assert found, "a near-zero threshold must fire"
    for d in found:
        assert any(lo <= d.start < d.end <= hi for lo, hi in spans), d
        assert d.latency >= 0
    for span_lo, span_hi in spans:  # every keyword heard in every word's span
        assert {d.keyword for d in found if span_lo <= d.start <= span_hi} == set(KEYWORDS)
    for keyword in KEYWORDS:
        starts = [d.start for d in found if d.keyword == keyword]
        assert starts == sorted(starts)
    assert [d.detected_at for d in found] == sorted(d.detected_at for d in found)
    stats = spotter.stats
    assert stats.audio_s == pytest.approx(len(speech_stream.audio) / SAMPLE_RATE, abs=0.05)
    assert 0 < stats.voiced_s < stats.audio_s * 0.8  # silence between the words is gated out
    assert stats.window_errors == stats.callback_errors == stats.overrun_samples == 0


def test_result_does_not_depend_on_block_size(encoder, speech_stream, tmp_path, monkeypatch):
    path = speech_stream.write(tmp_path / "s.wav")
    results = []
    for block_s in (0.01, 0.02, 0.137):
        monkeypatch.setattr(AudioFile, "block_s", block_s)
        found, _ = run(encoder, AudioFile(path, realtime=False))
        results.append([key(d) for d in found])
    assert results[0] == results[1] == results[2]


def test_any_rate_and_channel_count_is_converted(speech_stream, tmp_path):
    """A 44.1 kHz stereo FLAC arrives in the ring as the same 16 kHz mono audio."""
    path = speech_stream.write(tmp_path / "s.flac", rate=44100, channels=2)
    ring = RingBuffer(len(speech_stream.audio) + SAMPLE_RATE)
    source = AudioFile(path, realtime=False)
    source.start(ring)
    ring.wait_for(10**9, timeout=10)
    assert ring.closed
    _, audio = ring.read(0, ring.write_index)
    assert abs(len(audio) - len(speech_stream.audio)) <= 2
    n = min(len(audio), len(speech_stream.audio))
    correlation = np.corrcoef(audio[:n], speech_stream.audio[:n])[0, 1]
    assert correlation > 0.99


def test_stdin_gives_the_same_detections_as_the_file(encoder, speech_stream, tmp_path):
    path = speech_stream.write(tmp_path / "s.wav")
    from_file, _ = run(encoder, AudioFile(path, realtime=False))
    pcm = soundfile.read(path, dtype="int16")[0].astype("<i2").tobytes()  # the very same samples
    from_stdin, _ = run(encoder, RawStdin(io.BytesIO(pcm), realtime=False))
    assert [key(d) for d in from_stdin] == [key(d) for d in from_file]


@pytest.mark.parametrize("given", ["file", "stdin"])
def test_nan_and_infinities_in_a_float_recording_are_counted_in_the_stats(encoder, speech_stream, tmp_path, given):
    """The pipeline counts those pushed to it, but a source's reach it through the ring, past ``push``: the source
    counts them as it reads them, in each channel, and the spotter's stats say how many."""
    spoilt = speech_stream.audio.copy()
    spoilt[SAMPLE_RATE // 2: SAMPLE_RATE // 2 + 100] = np.nan  # in the quiet before the first word
    spoilt[3 * SAMPLE_RATE] = np.inf
    spoilt[-SAMPLE_RATE // 2] = -np.inf
    path = tmp_path / "spoilt.wav"
    soundfile.write(path, np.stack([spoilt, speech_stream.audio], axis=1), SAMPLE_RATE, subtype="FLOAT")  # one channel spoilt
    source = AudioFile(path, realtime=False) if given == "file" else RawStdin(io.BytesIO(path.read_bytes()), realtime=False)
    _, spotter = run(encoder, source, keywords=["stop"])
    assert source.non_finite_samples == spotter.stats.non_finite_samples == 102
    assert spotter.stats.audio_s == pytest.approx(len(spoilt) / SAMPLE_RATE, abs=0.05)


def test_a_raising_callback_is_logged_and_the_stream_goes_on(encoder, speech_stream, tmp_path, caplog):
    calls = []

    def on_detect(d: Detection) -> None:
        calls.append(d)
        raise RuntimeError("boom")

    spotter = Spotter(
        [Keyword("stop", FIRE_ON_ANYTHING)], on_detect, encoder=encoder,
        source=AudioFile(speech_stream.write(tmp_path / "s.wav"), realtime=False),
    )
    with spotter:
        assert spotter.wait(timeout=60)
    assert len(calls) >= len(speech_stream.word_spans)
    assert spotter.stats.callback_errors == len(calls)
    assert "on_detect callback raised RuntimeError: boom" in caplog.text


class FailingOnce(Encoder):
    """The real encoder, made to fail on its second window (a fault the real parts cannot produce)."""

    def __init__(self, inner: Encoder) -> None:
        self.__dict__.update(inner.__dict__)
        self.calls = 0

    def encode(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("bad window")
        return super().encode(*args, **kwargs)


def test_one_bad_window_does_not_end_the_stream(encoder, speech_stream, tmp_path):
    found, spotter = run(FailingOnce(encoder), AudioFile(speech_stream.write(tmp_path / "s.wav"), realtime=False))
    assert spotter.stats.window_errors == 1
    assert spotter.stats.windows > 5
    last_word_start = speech_stream.word_spans[-1][0] / SAMPLE_RATE
    assert any(d.start > last_word_start - 0.5 for d in found)


def test_callback_and_generator_see_the_same_detections(encoder, speech_stream, tmp_path):
    seen: list[Detection] = []
    spotter = Spotter(
        [Keyword("hey", FIRE_ON_ANYTHING)], seen.append, encoder=encoder,
        source=AudioFile(speech_stream.write(tmp_path / "s.wav"), realtime=False),
    )
    with spotter:
        from_generator = list(spotter.detections())
    assert from_generator == seen and seen


def test_no_vad_encodes_everything(encoder, speech_stream, tmp_path):
    settings = SpotterSettings(vad=VadSettings(enabled=False))
    _, spotter = run(encoder, AudioFile(speech_stream.write(tmp_path / "s.wav"), realtime=False), settings=settings)
    assert spotter.stats.voiced_s == pytest.approx(spotter.stats.audio_s)
    duration = len(speech_stream.audio) / SAMPLE_RATE
    assert spotter.stats.windows >= duration / settings.hop_s - 1


def test_keyword_parsing_and_validation(encoder):
    assert Keyword.parse("hey:0.8") == Keyword("hey", 0.8)
    assert Keyword.parse(" hey   computer ") == Keyword("hey computer")
    for bad in ("hey:1.5", "hey:x", ":0.5", "   "):
        with pytest.raises(KeywordError):
            Keyword.parse(bad)
    with pytest.raises(KeywordError, match="no keywords"):
        Spotter([], encoder=encoder)
    with pytest.raises(KeywordError, match="duplicate"):
        Spotter(["stop", "STOP"], encoder=encoder)
    with pytest.raises(KeywordError, match="cannot spell"):
        Spotter(["café"], encoder=encoder)
    with pytest.raises(KeywordError, match="'sotp'.*not among the keywords"):  # a misspelt name changed nothing, silently
        Spotter(["stop"], encoder=encoder, thresholds={"sotp": 0.9})
    assert Spotter(["stop"], encoder=encoder, thresholds={"stop": 0.9}).thresholds == {"stop": 0.9}
    assert Spotter(["hey computer"], encoder=encoder, thresholds={"Hey  Computer": 0.6}).thresholds == {"hey computer": 0.6}


def test_a_spotter_that_has_run_refuses_to_start_again(encoder, speech_stream, tmp_path):
    path = tmp_path / "speech.wav"
    soundfile.write(path, speech_stream.audio, SAMPLE_RATE)
    _, spotter = run(encoder, AudioFile(path, realtime=False))
    with pytest.raises(RuntimeError, match="already run"):  # it ended at once, as if the file held nothing
        spotter.start()


def test_a_missing_or_unreadable_file_fails_when_the_spotter_is_built(encoder, tmp_path):
    from kwstream.audio.sources import AudioInputError

    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    for path, reason in ((tmp_path / "nope.flac", "no such audio file"), (text, "cannot read")):
        with pytest.raises(AudioInputError, match=reason):
            Spotter(["stop"], encoder=encoder, source=AudioFile(path, realtime=False))


def test_events_describe_the_stream_in_order(encoder, speech_stream, tmp_path):
    from kwstream.stream.events import Level, ScoredWindow, VoiceActivity

    events: list[object] = []
    spotter = Spotter([Keyword("stop", FIRE_ON_ANYTHING)], encoder=encoder, on_event=events.append,
                      source=AudioFile(speech_stream.write(tmp_path / "s.wav"), realtime=False))
    with spotter:
        spotter.wait()
    levels = [e for e in events if isinstance(e, Level)]
    activity = [e for e in events if isinstance(e, VoiceActivity)]
    windows = [e for e in events if isinstance(e, ScoredWindow)]
    detections = [e for e in events if isinstance(e, Detection)]
    block_s = spotter.settings.level_block_ms / 1000
    assert [level.time_s for level in levels] == pytest.approx([block_s * (i + 1) for i in range(len(levels))])
    assert levels[-1].time_s == pytest.approx(len(speech_stream.audio) / SAMPLE_RATE, abs=block_s)
    assert max(level.peak_dbfs for level in levels) > -20  # the words
    assert min(level.rms_dbfs for level in levels) < -60  # the quiet room between them
    assert [a.voiced for a in activity] == [True, False] * len(speech_stream.word_spans)
    for (start, end), (opened, closed) in zip(speech_stream.word_spans, zip(activity[::2], activity[1::2])):
        assert opened.time_s <= start / SAMPLE_RATE and closed.time_s >= end / SAMPLE_RATE
    assert len(windows) == spotter.stats.windows and all(set(w.scores) == {"stop"} for w in windows)
    assert len(detections) == spotter.stats.detections > 0
    times = [getattr(e, "time_s", None) or getattr(e, "end_s", None) or e.detected_at for e in events]
    assert all(t is not None for t in times)


def test_pause_skips_encoding_and_thresholds_change_live(encoder, speech_stream, tmp_path):
    spotter = Spotter([Keyword("stop", FIRE_ON_ANYTHING)], encoder=encoder,
                      source=AudioFile(speech_stream.write(tmp_path / "s.wav"), realtime=False))
    spotter.pause()
    spotter.set_threshold("stop", 1.0)
    assert spotter.paused and spotter.thresholds == {"stop": 1.0}
    with pytest.raises(KeywordError):
        spotter.set_threshold("go", 0.5)
    with spotter:
        spotter.wait()
    assert spotter.stats.windows == 0 and spotter.stats.detections == 0
    assert spotter.stats.voiced_s > 0  # capture and VAD went on
    assert spotter.stats.audio_s > 0 and spotter.stats.paused_s == pytest.approx(spotter.stats.audio_s)  # told as not searched


class Slow(Encoder):
    """The real encoder, slowed down to well below real time (to provoke an overrun)."""

    def __init__(self, inner: Encoder, delay_s: float) -> None:
        self.__dict__.update(inner.__dict__)
        self.delay_s = delay_s

    def encode(self, *args, **kwargs):
        time.sleep(self.delay_s)
        return super().encode(*args, **kwargs)


@pytest.mark.slow  # real time
def test_a_worker_slower_than_real_time_loses_audio_loudly(encoder, tmp_path, caplog):
    from conftest import make_speech_stream

    stream = make_speech_stream(["3_theo_0", "7_jackson_0"] * 2, gap_s=0.2)  # ~5 s of nearly continuous speech
    settings = SpotterSettings(ring_s=3.0)
    spotter = Spotter([Keyword("stop", FIRE_ON_ANYTHING)], encoder=Slow(encoder, 0.6), settings=settings,
                      source=AudioFile(stream.write(tmp_path / "s.wav"), realtime=True))
    with spotter:
        assert spotter.wait(timeout=60)
    assert spotter.stats.overrun_samples > 0
    assert "audio lost" in caplog.text


@pytest.mark.slow  # real time
def test_stop_returns_even_when_stdin_never_sends_anything(encoder):
    import os
    import threading

    read_end, write_end = os.pipe()
    spotter = Spotter(["stop"], encoder=encoder, source=RawStdin(os.fdopen(read_end, "rb"), realtime=True))
    spotter.start()
    stopper = threading.Thread(target=spotter.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=15)
    os.close(write_end)
    assert not stopper.is_alive(), "stop() hung on a silent pipe"


# -- what a new user types, on the bundled model and the demo recording -------------------------------

DEMO = ASSET_AUDIO / "demo_hey_stop.flac"
needs_bundled_model = pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="needs the bundled model")


@pytest.fixture(scope="module")
def bundled() -> Encoder:
    return Encoder(EncoderSettings(model=str(BUNDLED_MODEL_DIR)))


def demo() -> AudioFile:
    return AudioFile(DEMO, realtime=False)


@needs_bundled_model
def test_constructor_thresholds_are_checked_as_set_threshold_checks_them(bundled):
    for name, bad in (("hey", 2.0), ("STOP", -1), ("hey", math.nan)):  # "hey" never fired, "stop" fired on anything
        with pytest.raises(KeywordError, match=rf"threshold of '{name}' must be in \[0, 1\], got {bad}"):
            Spotter(["hey", "stop"], source=demo(), encoder=bundled, thresholds={name: bad})
    for bad in ("0.8", True):  # a TypeError, and True taken as 1
        with pytest.raises(KeywordError, match="must be a number in"):
            Spotter(["hey", "stop"], source=demo(), encoder=bundled, thresholds={"hey": bad})


@needs_bundled_model
def test_set_threshold_names_keywords_as_the_constructor_does(bundled):
    spotter = Spotter(["hey", "stop"], source=demo(), encoder=bundled, thresholds={"HEY": 0.1})
    spotter.set_threshold("HEY", 0.2)
    spotter.set_threshold(" Stop ", 0.9)
    assert spotter.thresholds == {"hey": 0.2, "stop": 0.9}
    with pytest.raises(KeywordError, match="unknown keyword 'go'"):
        spotter.set_threshold("go", 0.5)


@needs_bundled_model
def test_a_string_of_keywords_reads_as_the_cli_reads_it(bundled):
    assert Spotter("hey", source=demo(), encoder=bundled).keywords == ["hey"]  # not the letters h, e, y
    spotter = Spotter("hey,stop:0.6", source=demo(), encoder=bundled)
    assert spotter.thresholds["stop"] == 0.6
    with spotter:
        assert [d.keyword for d in spotter.detections()] == ["hey", "stop"]


@needs_bundled_model
def test_stop_from_on_detect_ends_the_spotter(bundled, caplog):
    after_stop: list[str] = []

    def on_detect(detection: Detection) -> None:
        if not after_stop:
            spotter.stop()
            after_stop.append(detection.keyword)

    spotter = Spotter(["hey", "stop"], on_detect, source=demo(), encoder=bundled)
    with caplog.at_level(logging.ERROR, logger="kwstream"):
        spotter.start()
        assert spotter.wait(timeout=60)
    assert after_stop == ["hey"]
    assert spotter.stats.callback_errors == 0 and not caplog.records
