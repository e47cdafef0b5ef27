"""Enrollment by example: turn a few spoken examples of a keyword into a stored, calibrated keyword.

Each example (a file, or a take from the microphone) is padded with a faint noise floor, trimmed to
its speech by the VAD (refused when there is none), and encoded with ``CONTEXT_S`` of its own
surrounding audio on each side, as the streaming encoder sees a word inside a window; the frames of
the trimmed speech on the keyword's layer are kept.

The threshold comes from the examples themselves, scored exactly as ``listen`` scores them (each
example pushed through a KeywordPipeline: VAD, windows, streaming encoder, and the scores the
Detector itself compares with a threshold, its smoothing and all, so that the threshold chosen
can be reached):

* positives: each example, alone in a short stream, against the *other* examples (leave one out);
* negatives: ``--negatives`` recordings of keyword-free speech against all the examples.

With negatives, the threshold sits halfway between the highest negative and the lowest positive
when they are apart; when they overlap it goes just above the highest negative (false alarms cost
more than a repeat). Without negatives it is ``NO_NEGATIVES_MARGIN`` below the lowest positive,
a margin measured on spoken digits (docs/enrollment.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from kwstream.audio.io import SAMPLE_RATE
from kwstream.audio.ring import RingBuffer
from kwstream.audio.sources import Microphone
from kwstream.stream.replay import compared_scores
from kwstream.keywords.base import default_layer
from kwstream.keywords.enrolled.scorer import EnrolledScorer
from kwstream.keywords.enrolled.store import EnrolledKeyword, EnrollmentError
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder
from kwstream.stream.events import LevelMeter, ScoredWindow
from kwstream.stream.pipeline import KeywordPipeline, PipelineSettings, run
from kwstream.stream.vad import SpeechEnd, SpeechStart, VadGate, VadSettings

MIN_EXAMPLES = 2
RECOMMENDED_EXAMPLES = 3
MAX_LENGTH_RATIO = 2.5
"""An example longer or shorter than this factor times the median example is refused."""
NO_NEGATIVES_MARGIN = 0.05
"""Without negative speech: the threshold is this far below the lowest leave-one-out score."""
MIN_AGREEMENT = 0.1
"""Lowest leave-one-out score accepted: below it an example does not resemble the others at all
(another word, a bad take, or a model whose features mean nothing), and any threshold would fire
on everything."""
NEGATIVE_MARGIN = 0.01
"""With overlapping negatives: the threshold is this far above the highest negative score."""


@dataclass(frozen=True)
class EnrollSettings:
    pad_s: float = 0.5
    """Noise floor added before and after each example, so the VAD (which distrusts a stream's
    first 150 ms) and the encoder see the word's edges as they would in a stream."""
    noise_floor_dbfs: float = -70.0
    context_s: float = 0.4
    """Audio on each side of the trimmed speech that the encoder sees when making the example's features."""
    trim_vad: VadSettings = field(default_factory=lambda: VadSettings(preroll_ms=60, hangover_ms=150))
    """VAD for trimming: a short pre-roll and hangover, so the example is the word, not its pauses."""
    max_example_s: float = 3.0
    """A longer example is not a keyword."""


def _noise(n: int, dbfs: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 10 ** (dbfs / 20)).astype(np.float32)


def pad(audio: np.ndarray, settings: EnrollSettings, seed: int = 0) -> np.ndarray:
    """``audio`` between two stretches of faint noise, with the floor under it too."""
    edge = int(settings.pad_s * SAMPLE_RATE)
    padded = np.concatenate([np.zeros(edge, np.float32), audio, np.zeros(edge, np.float32)])
    return padded + _noise(len(padded), settings.noise_floor_dbfs, seed)


def voiced_span(audio: np.ndarray, vad: VadSettings) -> tuple[int, int] | None:
    """First sample of the first speech span to the last of the last, or None without speech."""
    gate = VadGate(vad)
    events = gate.push(audio) + gate.flush()
    starts = [e.sample for e in events if isinstance(e, SpeechStart)]
    ends = [e.sample for e in events if isinstance(e, SpeechEnd)]
    return (starts[0], ends[-1]) if starts and ends else None


@dataclass(frozen=True)
class Example:
    audio: np.ndarray
    """The padded recording."""
    start_sample: int
    stop_sample: int
    """The speech in it, [start, stop)."""
    source: str

    @property
    def speech(self) -> np.ndarray:
        return self.audio[self.start_sample:self.stop_sample]

    @property
    def seconds(self) -> float:
        return (self.stop_sample - self.start_sample) / SAMPLE_RATE


def prepare(audio: np.ndarray, source: str, settings: EnrollSettings, seed: int = 0) -> Example:
    """Pad and trim one example; refuse one without speech or too long to be a keyword."""
    padded = pad(audio, settings, seed)
    span = voiced_span(padded, settings.trim_vad)
    if span is None:
        raise EnrollmentError(f"example {source} holds no speech (the VAD found none); record it again, closer or louder")
    example = Example(padded, *span, source)
    if example.seconds > settings.max_example_s:
        raise EnrollmentError(f"example {source} holds {example.seconds:.1f} s of speech; a keyword example must be "
                              f"at most {settings.max_example_s:.0f} s (one word or short phrase)")
    return example


def check_examples(examples: Sequence[Example]) -> None:
    """At least MIN_EXAMPLES, of lengths within MAX_LENGTH_RATIO of their median."""
    if len(examples) < MIN_EXAMPLES:
        raise EnrollmentError(f"{len(examples)} example(s) given; enrollment needs at least {MIN_EXAMPLES} "
                              f"({RECOMMENDED_EXAMPLES} or more recommended)")
    median = float(np.median([e.seconds for e in examples]))
    for e in examples:
        if not median / MAX_LENGTH_RATIO <= e.seconds <= median * MAX_LENGTH_RATIO:
            raise EnrollmentError(f"example {e.source} is {e.seconds:.2f} s of speech, the median example {median:.2f} s: "
                                  f"more than {MAX_LENGTH_RATIO}x apart; are they all the same keyword?")


def example_features(encoder: Encoder, example: Example, layer: int, settings: EnrollSettings) -> np.ndarray:
    """(frames, hidden) features of the example's speech, encoded with its surrounding audio."""
    spf = encoder.samples_per_frame
    context = int(settings.context_s * SAMPLE_RATE)
    first = max(0, example.start_sample - context)
    features = encoder.encode(example.audio[first:example.stop_sample + context], (layer,)).features[layer]
    start = (example.start_sample - first) // spf
    stop = min(len(features), math.ceil((example.stop_sample - first) / spf))
    return features[start:max(stop, start + 1)]


def pipeline_scores(audio: np.ndarray, scorer: EnrolledScorer, encoder: Encoder, settings: PipelineSettings) -> np.ndarray:
    """Every score the detector would compare with the threshold when ``audio`` is heard: the
    scorer's (one) keyword's smoothed scores, from the Detector itself (``compared_scores``)."""
    pipeline = KeywordPipeline(KeywordSet(encoder, scorers=[scorer]), encoder, settings)
    windows = [e for e in run(pipeline, audio) if isinstance(e, ScoredWindow)]
    return np.array(compared_scores(windows, scorer.keywords[0], settings.detector), dtype=np.float64)


@dataclass(frozen=True)
class EnrollmentCalibration:
    threshold: float
    method: str
    positives: list[float]
    """Leave-one-out score of each example."""
    negatives_max: float | None
    negative_windows: int

    def as_dict(self) -> dict:
        return {"method": self.method, "leave_one_out": [round(p, 4) for p in self.positives],
                "negatives_max": None if self.negatives_max is None else round(self.negatives_max, 4),
                "negative_windows": self.negative_windows}


def pick_threshold(positives: Sequence[float], negatives: np.ndarray | None) -> EnrollmentCalibration:
    low = min(positives)
    if low < MIN_AGREEMENT:
        raise EnrollmentError(
            f"the examples do not resemble each other (leave-one-out scores {', '.join(f'{p:.2f}' for p in positives)}, "
            f"each should be at least {MIN_AGREEMENT}): record them again, the same word each time"
        )
    if negatives is None or len(negatives) == 0:
        threshold = low - NO_NEGATIVES_MARGIN
        return EnrollmentCalibration(round(float(np.clip(threshold, 0.0, 1.0)), 4), f"lowest leave-one-out score - {NO_NEGATIVES_MARGIN}",
                           list(positives), None, 0)
    high = float(negatives.max())
    if high < low:
        threshold, method = (high + low) / 2, "halfway between the highest negative and the lowest leave-one-out score"
    else:
        threshold, method = high + NEGATIVE_MARGIN, f"highest negative + {NEGATIVE_MARGIN} (negatives overlap the examples)"
    return EnrollmentCalibration(round(float(np.clip(threshold, 0.0, 1.0)), 4), method, list(positives), high, len(negatives))


def calibrate(name: str, examples: Sequence[Example], features: Sequence[np.ndarray], layer: int, encoder: Encoder,
              negatives: Sequence[np.ndarray], settings: PipelineSettings) -> EnrollmentCalibration:
    """Leave-one-out scores of the examples and scores of negative speech, through the real pipeline."""
    positives = []
    for i, example in enumerate(examples):
        others = [f for j, f in enumerate(features) if j != i]
        scores = pipeline_scores(example.audio, EnrolledScorer([name], [layer], [others], [None]), encoder, settings)
        positives.append(float(scores.max()) if len(scores) else 0.0)
    if not negatives:
        return pick_threshold(positives, None)
    everyone = EnrolledScorer([name], [layer], [list(features)], [None])
    negative_scores = np.concatenate([pipeline_scores(audio, everyone, encoder, settings) for audio in negatives])
    return pick_threshold(positives, negative_scores)


def enroll(name: str, recordings: Sequence[tuple[np.ndarray, str]], encoder: Encoder, settings: PipelineSettings,
           layer: int | None = None, negatives: Sequence[np.ndarray] = (),
           enroll_settings: EnrollSettings = EnrollSettings()) -> EnrolledKeyword:
    """A calibrated keyword from (audio, source) examples; nothing is written here."""
    layer = default_layer(encoder, "enrolled") if layer is None else layer
    encoder.check_layer(layer)
    examples = [prepare(audio, source, enroll_settings, seed=i) for i, (audio, source) in enumerate(recordings)]
    check_examples(examples)
    features = [example_features(encoder, e, layer, enroll_settings) for e in examples]
    calibration = calibrate(name, examples, features, layer, encoder, negatives, settings)
    return EnrolledKeyword(name, layer, calibration.threshold, encoder.fingerprint, encoder.name, features,
                           [e.source for e in examples], calibration.as_dict())


def record_take(seconds: float, device: int | str | None, meter: Callable[[float], None]) -> np.ndarray:
    """Up to ``seconds`` from the microphone, ending early once speech has been heard and has
    stopped; ``meter`` gets each 50 ms block's level in dBFS. Nothing is played back."""
    ring = RingBuffer(int((seconds + 1) * SAMPLE_RATE))
    levels = LevelMeter(SAMPLE_RATE // 20, SAMPLE_RATE)
    gate = VadGate(VadSettings())
    mic = Microphone(device)
    mic.start(ring)
    cursor, total, heard = 0, int(seconds * SAMPLE_RATE), False
    try:
        while cursor < total:
            ring.wait_for(min(cursor + SAMPLE_RATE // 20, total), timeout=1.0)
            stop = min(ring.write_index, total)
            if stop <= cursor:
                continue
            _, audio = ring.read(cursor, stop)
            cursor = stop
            for level in levels.push(audio):
                meter(level.rms_dbfs)
            events = gate.push(audio)
            heard = heard or any(isinstance(e, SpeechStart) for e in events)
            if heard and any(isinstance(e, SpeechEnd) for e in events):
                break
    finally:
        mic.stop()
    _, audio = ring.read(0, cursor)
    return audio
