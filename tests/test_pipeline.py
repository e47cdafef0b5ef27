"""KeywordPipeline: the synchronous pipeline that listen, eval, bench and enrollment all run.

On the bundled model and the demo recording: the detections do not depend on the size of the
chunks the audio is pushed in (1 sample to 4,000), they are the Spotter's on the same file, events
come in stream order, and reset() leaves no trace of earlier audio.
"""

from __future__ import annotations

import numpy as np
import pytest

from kwstream.assets import DEMO_AUDIO
from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.audio.ring import RingBuffer
from kwstream.audio.sources import AudioFile
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.model.resolve import BUNDLED_MODEL_DIR
from kwstream.spotter import Spotter, SpotterSettings
from kwstream.stream.detector import Detection
from kwstream.stream.events import Level, ScoredWindow, VoiceActivity
from kwstream.stream.pipeline import KeywordPipeline, run
from kwstream.stream.replay import replay

pytestmark = pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="needs the bundled model")

KEYWORDS = ["hey", "stop"]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(EncoderSettings(model=str(BUNDLED_MODEL_DIR), threads=1))


@pytest.fixture(scope="module")
def demo() -> np.ndarray:
    return read_audio(DEMO_AUDIO)


def pipeline(encoder: Encoder, events: bool = True) -> KeywordPipeline:
    return KeywordPipeline(KeywordSet(encoder, KEYWORDS), encoder, SpotterSettings(), events=events)


def pushed(p: KeywordPipeline, audio: np.ndarray, chunk: int) -> list:
    events = []
    for start in range(0, len(audio), chunk):
        events += p.push(audio[start:start + chunk])
    return events + p.flush()


def found(events: list) -> list[tuple[str, float, float, float]]:
    """What a detection says, less when it fired (that includes the measured compute time)."""
    return [(d.keyword, round(d.score, 6), round(d.start, 4), round(d.end, 4)) for d in events if isinstance(d, Detection)]


def scored(events: list) -> list[tuple[float, float, dict]]:
    return [(w.start_s, w.end_s, {k: round(v.score, 6) for k, v in w.scores.items()}) for w in events if isinstance(w, ScoredWindow)]


@pytest.fixture(scope="module")
def spotter_detections(encoder: Encoder) -> list[tuple[str, float, float, float]]:
    spotter = Spotter(KEYWORDS, encoder=encoder, source=AudioFile(DEMO_AUDIO, realtime=False))
    with spotter:
        return found(list(spotter.detections()))


def test_the_spotter_finds_both_words_in_the_demo(spotter_detections):
    assert [k for k, *_ in spotter_detections] == KEYWORDS


@pytest.mark.parametrize("chunk", [pytest.param(1, marks=pytest.mark.slow), 160, 320, 4000])  # one sample at a time: slow
def test_pushed_in_any_chunks_the_pipeline_detects_what_the_spotter_detects(encoder, demo, spotter_detections, chunk):
    events = pushed(pipeline(encoder), demo, chunk)
    assert found(events) == spotter_detections
    whole = run(pipeline(encoder), demo)
    assert scored(events) == scored(whole)  # every window's scores, not only the detections
    assert [e for e in events if isinstance(e, VoiceActivity)] == [e for e in whole if isinstance(e, VoiceActivity)]


def test_on_a_captures_ring_the_pipeline_detects_the_same_and_releases_what_it_has_run(encoder, demo, spotter_detections):
    ring = RingBuffer(int(2.5 * SpotterSettings().history_s * SAMPLE_RATE))  # a fifth of the demo
    p = KeywordPipeline(KeywordSet(encoder, KEYWORDS), encoder, SpotterSettings(), ring=ring)
    events = []
    for start in range(0, len(demo), 1000):  # a capture thread's writes, never blocked
        ring.write(demo[start:start + 1000])
        events += p.advance(ring.write_index)
    assert found(events + p.flush()) == spotter_detections
    assert ring.overrun_samples == 0  # the pipeline released each sample once no window needed it
    with pytest.raises(RuntimeError):
        p.push(demo[:100])  # the capture writes this ring, not the pipeline


def test_events_come_in_stream_order_and_stats_add_up(encoder, demo):
    p = pipeline(encoder)
    events = pushed(p, demo, 4000)
    levels = [e.time_s for e in events if isinstance(e, Level)]
    assert levels == sorted(levels) and len(levels) == len(demo) // (SAMPLE_RATE // 20)
    windows = [e for e in events if isinstance(e, ScoredWindow)]
    assert [w.end_s for w in windows] == sorted(w.end_s for w in windows)
    detections = [e for e in events if isinstance(e, Detection)]
    assert [d.detected_at for d in detections] == sorted(d.detected_at for d in detections)
    assert p.stats.windows == len(windows) and p.stats.detections == len(detections)
    assert p.stats.audio_s == pytest.approx(len(demo) / SAMPLE_RATE) and 0 < p.stats.voiced_s < p.stats.audio_s


def test_reset_leaves_no_trace_of_earlier_audio(encoder, demo):
    p = pipeline(encoder)
    first = run(p, demo)
    p.reset()
    assert p.position == 0
    again = run(p, demo)
    assert found(again) == found(first) and scored(again) == scored(first)


def test_without_events_only_detections_come_and_a_threshold_change_takes_effect_at_once(encoder, demo):
    p = pipeline(encoder, events=False)
    events = run(p, demo)
    assert events and all(isinstance(e, Detection) for e in events)
    p.reset()
    p.keywords.set_threshold("stop", 1.0)  # the one map: the detector reads it
    assert [d.keyword for d in run(p, demo)] == ["hey"]


def test_a_recording_cut_tight_around_its_word_is_heard_as_the_word_in_a_quiet_room(encoder):
    """The bundled FSDD clips start and end on their digit (0.24-0.68 s): before the quiet around a stream
    (``VadGate``), none of the four was found; the Spotter reading the file finds what the pipeline finds."""
    from kwstream.assets import AUDIO_DIR
    from kwstream.evaluation.bench import WORDS

    clips = sorted(AUDIO_DIR.glob("fsdd_*.wav"))
    assert len(clips) == 4
    for path in clips:
        word, audio = WORDS[path.stem.split("_")[1]], read_audio(path)
        keywords = KeywordSet(encoder, [word])
        events = run(KeywordPipeline(keywords, encoder, SpotterSettings(), events=True), audio)
        found = [e for e in events if isinstance(e, Detection)]
        assert [d.keyword for d in found] == [word], path.name
        times = [t for e in events if isinstance(e, ScoredWindow) for t in (e.start_s, e.end_s)]
        times += [e.time_s for e in events if isinstance(e, VoiceActivity)] + [found[0].start, found[0].end]
        assert all(0.0 <= t <= len(audio) / SAMPLE_RATE for t in times), path.name  # the quiet has no time of its own
        windows = [e for e in events if isinstance(e, ScoredWindow)]
        replayed = replay(windows, word, keywords.thresholds[word], SpotterSettings().detector)
        assert [(d.start, d.end, d.detected_at) for d in replayed] == [(d.start, d.end, d.detected_at) for d in found]
        with Spotter(keywords, encoder=encoder, source=AudioFile(path, realtime=False)) as spotter:
            assert [(d.keyword, d.start, d.end) for d in spotter.detections()] == [(word, found[0].start, found[0].end)]


@pytest.mark.parametrize("audio, message", [
    (np.zeros((SAMPLE_RATE, 2), np.float32), "mono"),  # flattened, the channels would interleave as one voice
    (np.zeros((2, SAMPLE_RATE), np.float32), "mono"),
    (np.zeros(SAMPLE_RATE, np.int16), "float"),  # 16-bit PCM would read as far past full scale
])
def test_push_refuses_audio_it_would_misread_and_hears_nothing_of_it(encoder, audio, message):
    p = pipeline(encoder)
    with pytest.raises(ValueError, match=message):
        p.push(audio)
    assert p.position == 0


def test_one_channel_as_a_column_is_mono(encoder, demo, spotter_detections):
    assert found(pushed(pipeline(encoder), demo[:, None], 4000)) == spotter_detections


def test_nan_and_infinite_samples_are_heard_as_silence_and_counted(encoder, demo, spotter_detections, caplog):
    spoilt = demo.copy()
    spoilt[SAMPLE_RATE // 2: SAMPLE_RATE // 2 + 100] = np.nan  # in the quiet before "hey": unchecked, no "hey"
    spoilt[5 * SAMPLE_RATE] = np.inf
    p = pipeline(encoder)
    with caplog.at_level("WARNING"):
        assert [k for k, *_ in found(pushed(p, spoilt, 4000))] == [k for k, *_ in spotter_detections]
        p.reset()
        pushed(p, spoilt[:SAMPLE_RATE], 4000)
    assert p.stats.non_finite_samples == 201
    told = [r.getMessage() for r in caplog.records if "NaN" in r.getMessage()]
    assert told == ["NaN or infinite samples at 0.50 s of the stream: heard as silence"] * 2  # once a stream
