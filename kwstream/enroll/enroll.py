"""Enrollment by example: turn a few spoken examples of a keyword into a stored, calibrated keyword.

Each example (a file, or a take from the microphone) is padded with a faint noise floor, trimmed to
its speech by the VAD (refused when there is none), and encoded with ``CONTEXT_S`` of its own
surrounding audio on each side, as the streaming encoder sees a word inside a window; the frames of
the trimmed speech on the keyword's layer are kept, less the layer's mean hidden state over the bundled
keyword-free speech (``feature_centre``, kept with the keyword and subtracted in every window too), beside the
letters for letters + hidden keywords.

Takes that are not all the same word are refused, naming the odd one (``odd_take``). The threshold
comes from keyword-free speech (``kwstream.enroll.calibration``): the bundled speech and the user's
``--negatives``, scored exactly as ``listen`` scores them (pushed through a KeywordPipeline: VAD,
windows, streaming encoder, and the scores the Detector itself compares with a threshold), at a
target rate of false alarms; each take against the others (leave one out) sets a floor under it
and the expected recall. Letters + hidden states keywords also keep the spelling their takes read alike, if they
do, scored as a typed keyword beside the match (``kwstream.keywords.enrolled.spelled``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from kwstream.assets import NEGATIVE_SPEECH
from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.enroll.calibration import (FLOOR_FRACTION, TARGET_FA_PER_HOUR, Calibration, TakesDisagree, calibrate_threshold,
                                        check_positives, false_alarms_per_hour, threshold_for_rate)
from kwstream.audio.ring import RingBuffer
from kwstream.audio.sources import Microphone
from kwstream.stream.replay import compared_scores
from kwstream.keywords.base import KeywordMatch, KeywordScorer, default_layer
from kwstream.keywords.ctc import CtcKeywordScorer
from kwstream.keywords.enrolled.scorer import (CENTRED_SCALE, FUSED, HIDDEN, LETTERS, VOICE, EnrolledScorer, ExampleSet, hidden_score,
                                               letter_count, voice_score,
                                               matching_frames)
from kwstream.keywords.enrolled.spelled import Spelling, agreed_spelling, combined_score, greedy_spelling, stricter_than_typed
from kwstream.keywords.enrolled.store import EnrolledKeyword, EnrollmentError
from kwstream.keywords.keyword_set import KeywordSet, model_calibration, typed_scorer
from kwstream.model.encoder import EncodedFrames, Encoder
from kwstream.model.speech_embedding import shared_speech_embedding
from kwstream.stream.detector import DetectorSettings
from kwstream.stream.events import LevelMeter, ScoredWindow
from kwstream.stream.pipeline import KeywordPipeline, PipelineSettings, run
from kwstream.stream.vad import SpeechEnd, SpeechStart, VadGate, VadSettings

MIN_EXAMPLES = 2
RECOMMENDED_EXAMPLES = 3
MAX_LENGTH_RATIO = 2.5
"""An example longer or shorter than this factor times the median example is refused."""
AGREEMENT_FLOOR = 0.2
"""A take whose mean agreement (``agreement_matrix``) with the other takes is below this is not the same word."""
AGREEMENT_GAP = 0.275
"""...nor one that agrees with the others this much less than they agree with each other.

Both measured on jackson's FSDD digits, takes 0-9 (benchmarks/enroll_agreement.py), and chosen for versions 9
and 10 of the bundled model alike (the most sets refused where every set of one digit passes and the noisy
Spanish takes of tests/test_enrolled.py agree): all 1,200 sets of three takes of one digit pass on both; of
2,000 sets of two takes of one digit and one of another, version 10 refuses 93.3 % and version 9 92.8 %,
naming the odd take in all of them (version 12, 2026-12-07: 100 % pass, 92.9 % refused; lucas's takes 100 % and
97.0 %, theo's 99.8 % and 92.0 %). Any floor from -0.2 to 0.25 gives these figures. Before agreement was measured against keyword-free speech (0.45, 0.2 and 0.75 on the raw
scores, fitted to version 9), version 10 refused none: its hidden states score 0.95 within a digit and 0.77
between digits, anything scoring high against anything."""
PAIR_AGREEMENT_FLOOR = 0.4
"""Two takes, with no third to compare them by, must agree this much. On FSDD's takes 0-9 of each digit
(``python -m benchmarks.enroll_agreement --speaker S``, 2026-12-07, version 12) two takes of one digit pass in 450 of
450 pairs of jackson's and lucas's and 449 of theo's, and two of different digits are refused in 92.9 %, 95.5 % and
92.3 % of 4,500 pairs; at ``AGREEMENT_FLOOR`` they were refused in 58 %, 56 % and 69 % (a seven and a zero enrolled
with an expected recall of 0)."""
AGREEMENT_REST_CAP = 0.7
"""How well the others agree with each other counts up to this: two near-copies of one take must not make a
third, real take of the word look like another word."""

@dataclass(frozen=True)
class EnrollSettings:
    pad_s: float = 0.5
    """Noise floor added before and after each example, so that the VAD and the encoder see the word's edges as
    they would in a stream."""
    noise_floor_dbfs: float = -70.0
    context_s: float = 0.4
    """Audio on each side of the trimmed speech that the encoder sees when making the example's features."""
    trim_vad: VadSettings = field(default_factory=lambda: VadSettings(preroll_ms=60, hangover_ms=150))
    """VAD for trimming: a short pre-roll and hangover, so the example is the word, not its pauses."""
    max_example_s: float = 3.0
    """A longer example is not a keyword."""
    join_gap_s: float = 0.3
    """Speech spans closer than this are one take (the words of a phrase); of those further apart the loudest is."""
    noisy_within_db: float = 20.0
    """A take the VAD hears as longer than ``max_example_s`` (a noisy room) is narrowed to its sound within
    this of its loudest 10 ms before being judged."""
    min_active_s: float = 0.1
    """Less sound than this within 30 dB of the take's loudest 10 ms is a click or a cut-off take, not a
    word (the shortest of 695 FSDD and Precise clips has 0.16 s; a 25-75 ms burst of speech 0.03-0.06 s)."""
    min_peak_dbfs: float = -50.0
    """Speech whose loudest sample is below this is too quiet to match reliably."""
    clip_level: float = 0.99
    max_clipped: float = 0.002
    """Share of the speech's samples at ``clip_level`` or above beyond which the take is clipped."""


def _noise(n: int, dbfs: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 10 ** (dbfs / 20)).astype(np.float32)


def pad(audio: np.ndarray, settings: EnrollSettings, seed: int = 0) -> np.ndarray:
    """``audio`` between two stretches of faint noise, with the floor under it too."""
    edge = int(settings.pad_s * SAMPLE_RATE)
    padded = np.concatenate([np.zeros(edge, np.float32), audio, np.zeros(edge, np.float32)])
    return padded + _noise(len(padded), settings.noise_floor_dbfs, seed)


def voiced_span(audio: np.ndarray, vad: VadSettings, join_gap_s: float = 0.3) -> tuple[int, int] | None:
    """The take's word: of the VAD's speech spans, joined where less than ``join_gap_s`` apart (the
    words of a phrase), the one holding the most energy (not a click, a cough or a voice in the
    background before or after it); None without speech."""
    gate = VadGate(vad)
    events = gate.push(audio) + gate.flush()
    starts = [e.sample for e in events if isinstance(e, SpeechStart)]
    ends = [e.sample for e in events if isinstance(e, SpeechEnd)]
    spans: list[list[int]] = []
    for start, end in zip(starts, ends):
        start, end = max(start, 0), min(end, len(audio))  # the quiet around the stream (``VadGate``) is not the take's
        if spans and start - spans[-1][1] < join_gap_s * SAMPLE_RATE:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    if not spans:
        return None
    energy = [float(np.sum(np.square(audio[a:b], dtype=np.float64))) for a, b in spans]
    start, end = spans[int(np.argmax(energy))]
    return start, end


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
    """Pad and trim one example; refuse one without speech or unfit (``check_take``)."""
    padded = pad(audio, settings, seed)
    span = voiced_span(padded, settings.trim_vad, settings.join_gap_s)
    if span is None:
        peak = 20 * math.log10(max(float(np.abs(audio).max(initial=0.0)), 1e-10))
        raise EnrollmentError(f"example {source} holds no speech the VAD can hear (its loudest sample {peak:.0f} dBFS; "
                              f"frames under {settings.trim_vad.min_speech_dbfs:.0f} dBFS RMS are silence): record it "
                              "again, closer or louder")
    if (span[1] - span[0]) / SAMPLE_RATE > settings.max_example_s:  # noise the VAD took for speech around the word
        span = loud_span(padded, *span, settings.noisy_within_db)
    example = Example(padded, *span, source)
    check_take(example, settings)
    return example


def frame_levels(audio: np.ndarray) -> np.ndarray:
    """dBFS of each 10 ms frame."""
    hop = SAMPLE_RATE // 100
    frames = audio[:len(audio) // hop * hop].reshape(-1, hop).astype(np.float64)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def loud_span(audio: np.ndarray, start: int, stop: int, within_db: float, margin_s: float = 0.06) -> tuple[int, int]:
    """The part of [start, stop) from the first to the last 10 ms frame within ``within_db`` of the loudest."""
    level = frame_levels(audio[start:stop])
    if len(level) == 0:
        return start, stop
    loud = np.flatnonzero(level >= level.max() - within_db)
    hop, margin = SAMPLE_RATE // 100, int(margin_s * SAMPLE_RATE)
    return max(start, start + loud[0] * hop - margin), min(stop, start + (loud[-1] + 1) * hop + margin)


def active_seconds(audio: np.ndarray, within_db: float = 30.0) -> float:
    """Seconds of 10 ms frames within ``within_db`` of the loudest one: the sound itself, without
    the VAD's pre-roll and hangover around it."""
    level = frame_levels(audio)
    return float(np.sum(level >= level.max() - within_db)) / 100 if len(level) else 0.0


def check_take(example: Example, settings: EnrollSettings) -> None:
    """Refuse a take too long, too short, too quiet or clipped, with the reason in one line."""
    speech = example.speech
    if example.seconds > settings.max_example_s:
        raise EnrollmentError(f"example {example.source} holds {example.seconds:.1f} s of speech; a keyword example must be "
                              f"at most {settings.max_example_s:.0f} s (one word or short phrase)")
    active = active_seconds(speech)
    if active < settings.min_active_s:
        raise EnrollmentError(f"example {example.source} is too short ({active:.2f} s of sound, at least "
                              f"{settings.min_active_s:.2f} s): say the whole word")
    peak = 20 * math.log10(max(float(np.abs(speech).max()), 1e-10))
    if peak < settings.min_peak_dbfs:
        raise EnrollmentError(f"example {example.source} is too quiet (peak {peak:.0f} dBFS, at least "
                              f"{settings.min_peak_dbfs:.0f} needed): record it closer or louder")
    clipped = float(np.mean(np.abs(speech) >= settings.clip_level))
    if clipped > settings.max_clipped:
        raise EnrollmentError(f"example {example.source} is clipped ({clipped:.1%} of its samples at full scale): "
                              f"record it further from the microphone or with less gain")


def check_distinct(recordings: Sequence[tuple[np.ndarray, str]]) -> None:
    """Refuse a recording given twice (``enroll --from a.wav a.wav``): a copy of a take agrees with it perfectly, which
    says nothing of the word."""
    seen: dict[bytes, str] = {}
    for audio, source in recordings:
        key = hashlib.sha256(np.ascontiguousarray(audio, np.float32).tobytes()).digest()
        if key in seen:
            raise EnrollmentError(f"examples {seen[key]} and {source} are the same recording: give each take its own")
        seen[key] = source


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


def agreement_matrix(features: Sequence[np.ndarray], speech: Sequence[np.ndarray]) -> np.ndarray:
    """(takes, takes) symmetric agreement of the takes' hidden states: how much better take i is found in take j
    than in keyword-free ``speech`` (``speech_pieces``), as a share of what it could gain, ``(s - c) / (1 - c)``
    with ``s`` its match score in take j and ``c`` its mean best score in the pieces; of i in j and j in i the
    better, so that a take with more than the word (a noise before it that the VAD kept) still agrees.

    Against speech because raw match scores mean different things in different models: a transformer's hidden
    states share a large common direction, so that in version 10 of the bundled model any two frames have a
    high cosine (takes of different digits score 0.77, of one digit 0.95); relative to speech they score
    0.18 and 0.81 (version 9: 0.10 and 0.80)."""
    takes = [ExampleSet.build([[f]]) for f in features]
    found = np.array([[take.match(other)[0].score for other in features] for take in takes])
    chance = np.array([[np.mean([take.match(piece)[0].score for piece in speech])] for take in takes])
    gain = (found - chance) / np.maximum(1.0 - chance, 1e-6)
    return np.maximum(gain, gain.T)


@dataclass(frozen=True)
class Disagreement:
    take: int
    """The take that matches the others worst."""
    score: float
    """Its mean agreement with the others: how much better they find each other than keyword-free speech
    (``agreement_matrix``; below 0 where speech without the word matches it better)."""
    others: float
    """The median agreement of the other takes with each other (its own when there are two takes)."""


def odd_take(pairs: np.ndarray) -> Disagreement | None:
    """The take whose ``agreement_matrix`` agreement says it is not the same word as the others, if any."""
    n = len(pairs)
    others = ~np.eye(n, dtype=bool)
    mean = np.array([pairs[i, others[i]].mean() for i in range(n)])
    # how well the other takes match each other (without take i): a take far below them is the odd one
    rest = np.array([np.median(pairs[np.ix_(others[i], others[i])][~np.eye(n - 1, dtype=bool)]) if n > 2 else mean[i]
                     for i in range(n)])
    floor = PAIR_AGREEMENT_FLOOR if n == 2 else AGREEMENT_FLOOR
    badness = np.maximum(floor - mean, np.minimum(rest, AGREEMENT_REST_CAP) - mean - AGREEMENT_GAP)
    worst = int(np.argmax(badness))
    return Disagreement(worst, float(mean[worst]), float(rest[worst])) if badness[worst] > 0 else None


def check_agreement(examples: Sequence[Example], features: Sequence[np.ndarray], speech: Sequence[np.ndarray]) -> None:
    """Refuse takes that are not all the same word, naming the one that matches the others worst."""
    odd = odd_take(agreement_matrix(features, speech))
    if odd is None:
        return
    if len(examples) == 2:
        raise EnrollmentError(f"the takes {examples[0].source} and {examples[1].source} do not match each other "
                              f"(agreement {odd.score:.2f}, at least {PAIR_AGREEMENT_FLOOR} needed): are they the same word? "
                              "A third take helps tell")
    raise EnrollmentError(f"take {examples[odd.take].source} does not match the others (agreement {odd.score:.2f} with them, "
                          f"theirs {odd.others:.2f} with each other): is it the same word? Record it again")


SPEECH_PIECE_S = 10.0
"""Long enough for a take to meet many words in each piece, short enough to encode at once."""
_pieces: dict[tuple[str, int], list[np.ndarray]] = {}


def speech_pieces(encoder: Encoder, layer: int) -> list[np.ndarray]:
    """``layer``'s hidden states of the bundled keyword-free speech in pieces of ``SPEECH_PIECE_S``, once per model and layer."""
    key = (encoder.fingerprint, layer)
    if key not in _pieces:
        speech, piece = read_audio(NEGATIVE_SPEECH), int(SPEECH_PIECE_S * SAMPLE_RATE)
        _pieces[key] = [encoder.encode(speech[s:s + piece], (layer,)).features[layer] for s in range(0, len(speech), piece)]
    return _pieces[key]


def feature_centre(encoder: Encoder, layer: int) -> np.ndarray:
    """(hidden,) float32 mean hidden state of ``layer`` over the bundled keyword-free speech.

    Enrolled keywords compare hidden states less this centre (``matching_frames``): a transformer's share a
    large common direction, so that their cosine distances barely vary (version 10 of the bundled model:
    takes of different digits score 0.77, of one digit 0.95). ``FUSED``: they add almost nothing to the letters'
    cost otherwise; centred, the sum ranks the word better at every rate measured. ``HIDDEN``: uncentred, the
    bundled keyword-free speech scores up to 0.83 and calibration lands on 1.0; centred and scored at
    ``SpeechMatches.hidden_scale``, it does not (docs/enrollment.md)."""
    return np.concatenate(speech_pieces(encoder, layer)).mean(axis=0).astype(np.float32)


def encoded_take(encoder: Encoder, example: Example, layer: int, settings: EnrollSettings) -> tuple[EncodedFrames, slice]:
    """The example encoded with ``settings.context_s`` of its surrounding audio on each side (as the streaming encoder
    sees a word inside a window), and the frames of its speech among them."""
    spf = encoder.samples_per_frame
    context = int(settings.context_s * SAMPLE_RATE)
    first = max(0, example.start_sample - context)
    encoded = encoder.encode(example.audio[first:example.stop_sample + context], (layer,))
    start = (example.start_sample - first) // spf
    stop = min(len(encoded), math.ceil((example.stop_sample - first) / spf))
    return encoded, slice(start, max(stop, start + 1))


def example_features(encoder: Encoder, example: Example, layer: int, settings: EnrollSettings, kind: str = HIDDEN,
                     centre: np.ndarray | None = None) -> np.ndarray:
    """(frames, hidden) features of the example's speech on ``layer`` (less ``centre``), (frames, letters) letter
    posteriors for ``LETTERS``, both side by side for ``FUSED``, and the speech embedding beside them for ``VOICE``
    (``matching_frames``), encoded with its surrounding audio (``encoded_take``)."""
    encoded, speech = encoded_take(encoder, example, layer, settings)
    if kind == VOICE:  # the embedding reaches back before the stretch, into the take's padding
        first = max(0, example.start_sample - int(settings.context_s * SAMPLE_RATE))
        encoded = replace(encoded, voice=shared_speech_embedding().frames(lambda a, b: example.audio[a:b], first, len(encoded),
                                                                          encoder.samples_per_frame))
    return matching_frames(encoded, kind, layer, encoder.blank_id, centre)[speech]


def take_spelling(encoder: Encoder, example: Example, layer: int, settings: EnrollSettings) -> str:
    """What the CTC head reads in the example's speech (``greedy_spelling``)."""
    encoded, speech = encoded_take(encoder, example, layer, settings)
    return greedy_spelling(encoded.log_probs[speech], encoder.tokens, encoder.blank_id, encoder.delimiter_id)


def spelling_at(text: str, typed_threshold: float, read: np.ndarray, hours: float, target_per_hour: float) -> Spelling | None:
    """``text`` as a keyword's spelling: at ``stricter_than_typed`` of a typed keyword's ``typed_threshold``, or where the
    scores keyword-free speech reads it at (``read``, the detector's, heard over ``hours``) reach ``target_per_hour``
    if that is higher; None where that is not below 1 (such speech reads it too often to listen for it)."""
    threshold = round(max(stricter_than_typed(typed_threshold), threshold_for_rate(read, hours, target_per_hour)), 4)
    return Spelling(text, threshold) if 0.0 < threshold < 1.0 else None


KEYWORD = "speech"
"""The name ``SpeechCosts`` scores under."""


class SpeechCosts:
    """A scorer that scores nothing and keeps what a centred ``HIDDEN`` or a ``VOICE`` keyword's score is made of in
    every window the pipeline scores: its best path's cost, or its two (``ExampleSet.costs``)."""

    def __init__(self, features: Sequence[np.ndarray], layer: int, centre: np.ndarray, encoder: Encoder, kind: str) -> None:
        self.keywords, self.layers, self.thresholds, self.needs_voice = [KEYWORD], (layer,), {KEYWORD: None}, kind == VOICE
        self._examples = ExampleSet.build([list(features)], kind, letter_count(encoder))
        self._kind, self._layer, self._centre, self._blank = kind, layer, centre, encoder.blank_id
        self.costs: list[np.ndarray] = []

    def score_frames(self, frames: EncodedFrames) -> list[KeywordMatch]:
        self.costs.append(self._examples.costs(matching_frames(frames, self._kind, self._layer, self._blank, self._centre))[0])
        return [KeywordMatch(0.0, 0, 0)]


@dataclass(frozen=True)
class SpeechMatches:
    """How the bundled keyword-free speech matches a centred ``HIDDEN`` or a ``VOICE`` keyword, window by window, from
    one pass of the pipeline: enough for both the keyword's scale and its scores at that scale, which calibration
    needs, without encoding the speech twice."""

    windows: list[ScoredWindow]
    """The windows the pipeline scored (their spans; the scores are placeholders)."""
    costs: np.ndarray
    """(windows, parts) the keyword's best costs in each: one part for ``HIDDEN``, two for ``VOICE`` (inf: none fits)."""

    def compared_scores(self, scale: float | tuple[float, float], detector: DetectorSettings) -> np.ndarray:
        """What the detector compares with the threshold when the keyword at ``scale`` hears the speech, as
        ``pipeline_scores`` gives it (a window's score is its costs' ``hidden_score``, or their ``voice_score``)."""
        if self.costs.shape[1] == 2:
            scores = [voice_score(fused, voice, np.asarray(scale)) for fused, voice in self.costs]
        else:
            scores = hidden_score(self.costs[:, 0], float(scale)).tolist()
        windows = [replace(w, scores={KEYWORD: replace(w.scores[KEYWORD], score=float(s))}) for w, s in zip(self.windows, scores)]
        return np.array(compared_scores(windows, KEYWORD, detector), dtype=np.float64)

    def hidden_scale(self, detector: DetectorSettings) -> float:
        """``hidden_score``'s scale for a centred ``HIDDEN`` keyword: the mean distance at which the speech matches it,
        from the scores the Detector compares at ``CENTRED_SCALE`` (which clips nothing)."""
        scores = self.compared_scores(CENTRED_SCALE, detector)
        return max(float(CENTRED_SCALE * (1.0 - scores.mean())), 1e-3) if len(scores) else CENTRED_SCALE

    def voice_scales(self) -> tuple[float, float]:
        """``voice_score``'s two scales for a ``VOICE`` keyword: the mean costs at which the speech matches its takes,
        letters + hidden states and voice, over the windows ``listen`` would score."""
        found = self.costs[np.isfinite(self.costs).all(axis=1)]
        if not len(found):
            raise EnrollmentError("the bundled keyword-free speech gave no window to scale a voice keyword by")
        fused, voice = np.maximum(found.mean(axis=0), 1e-3)
        return float(fused), float(voice)


def speech_matches(features: Sequence[np.ndarray], layer: int, encoder: Encoder, settings: PipelineSettings,
                   centre: np.ndarray, kind: str, speech: np.ndarray) -> SpeechMatches:
    """Keyword-free ``speech`` heard by a centred ``HIDDEN`` or a ``VOICE`` keyword through the pipeline."""
    costs = SpeechCosts(features, layer, centre, encoder, kind)
    pipeline = KeywordPipeline(KeywordSet(encoder, scorers=[costs]), encoder, settings)
    windows = [e for e in run(pipeline, speech) if isinstance(e, ScoredWindow)]
    return SpeechMatches(windows, np.array(costs.costs, dtype=np.float64).reshape(len(windows), 1 + (kind == VOICE)))


MATCHED, SPELLED = "matched", "spelled"
"""The names ``PathScores`` scores a keyword's two paths under."""


class PathScores:
    """A scorer that scores one enrolled keyword's two paths as two keywords, its takes' match (``MATCHED``) and, where
    it has a spelling, the spelling read as a typed keyword (``SPELLED``): one pass of the pipeline gives calibration
    both, to be joined (``heard_scores``) once the match's threshold is known."""

    def __init__(self, enrolled: EnrolledScorer, spelled: CtcKeywordScorer | None) -> None:
        self.keywords = [MATCHED] + ([SPELLED] if spelled is not None else [])
        self.layers, self.needs_voice = enrolled.layers, enrolled.needs_voice
        self.thresholds: dict[str, float | None] = dict.fromkeys(self.keywords)
        self._enrolled, self._spelled = enrolled, spelled

    def score_frames(self, frames: EncodedFrames) -> list[KeywordMatch]:
        return self._enrolled.score_frames(frames) + ([] if self._spelled is None else self._spelled.score(frames.log_probs))


def heard(audio: np.ndarray, scorer: KeywordScorer, encoder: Encoder, settings: PipelineSettings) -> list[ScoredWindow]:
    """The windows the pipeline scores when ``audio`` is heard with ``scorer``."""
    pipeline = KeywordPipeline(KeywordSet(encoder, scorers=[scorer]), encoder, settings)
    return [e for e in run(pipeline, audio) if isinstance(e, ScoredWindow)]


def heard_scores(windows: Sequence[ScoredWindow], detector: DetectorSettings,
                 thresholds: tuple[float, float] | None = None) -> np.ndarray:
    """What the detector compares with the threshold in ``windows`` (``PathScores``'): the match alone, or, given the
    keyword's and its spelling's ``thresholds``, the keyword's score with its spelling (``combined_score``), as
    ``SpelledOr`` scores it."""
    if thresholds is not None:
        windows = [replace(w, scores={MATCHED: replace(w.scores[MATCHED], score=combined_score(
            w.scores[MATCHED].score, w.scores[SPELLED].score, *thresholds))}) for w in windows]
    return np.array(compared_scores(windows, MATCHED, detector), dtype=np.float64)


def pipeline_scores(audio: np.ndarray, scorer: EnrolledScorer, encoder: Encoder, settings: PipelineSettings) -> np.ndarray:
    """Every score the detector would compare with the threshold when ``audio`` is heard: the
    scorer's (one) keyword's smoothed scores, from the Detector itself (``compared_scores``)."""
    windows = heard(audio, scorer, encoder, settings)
    return np.array(compared_scores(windows, scorer.keywords[0], settings.detector), dtype=np.float64)


FLOOR_FRACTIONS = {FUSED: 0.7}
"""The leave-one-out floor under a kind's threshold where it is not ``FLOOR_FRACTION``. Letters + hidden states are
the kind meant for any voice, and other voices score well below the enrolling voice's takes against each other:
jackson's digits in lucas's and nicolas's speech were found 0.53 at 0.9 of the takes' lowest score, 0.74 at 0.7 (at
0.3 false alarms per hour), and a Japanese word inside sentences 6-7 of 10 times instead of 0-1. The price: theo's
own other digits, enrolled and heard in his voice, fire more (33.6 -> 44.0 an hour). ``VOICE`` keeps 0.9, which its
false alarms need alone (docs/enrollment.md, "The floor"); beside rivals it listens at ``RIVALS_FLOOR``
(``kwstream.keywords.enrolled.store.listening_threshold``)."""


def scaled(features: Sequence[np.ndarray], layer: int, encoder: Encoder, settings: PipelineSettings,
           centre: np.ndarray | None, kind: str) -> tuple[float | tuple[float, float] | None, np.ndarray | None]:
    """A keyword's scale and the bundled speech's scores at it (None, None for kinds without a scale: ``FUSED``,
    ``LETTERS``), from one pass over the speech."""
    if kind not in (HIDDEN, VOICE):
        return None, None
    speech = speech_matches(features, layer, encoder, settings, centre, kind, read_audio(NEGATIVE_SPEECH))
    scale = speech.voice_scales() if kind == VOICE else speech.hidden_scale(settings.detector)
    return scale, speech.compared_scores(scale, settings.detector)


def scaled_calibration(name: str, examples: Sequence[Example], features: Sequence[np.ndarray], layer: int, encoder: Encoder,
                       negatives: Sequence[np.ndarray], settings: PipelineSettings, target_per_hour: float, kind: str,
                       centre: np.ndarray | None, take_spellings: Sequence[str] = ()
                       ) -> tuple[float | tuple[float, float] | None, Calibration, Spelling | None]:
    """A keyword's scale (``scaled``), its calibration at that scale, the bundled speech encoded once for both, and its
    spelling (``calibrate``)."""
    scale, bundled = scaled(features, layer, encoder, settings, centre, kind)
    return scale, *calibrate(name, examples, features, layer, encoder, negatives, settings, target_per_hour, kind, centre, scale,
                             bundled, take_spellings)


def calibrate(name: str, examples: Sequence[Example], features: Sequence[np.ndarray], layer: int, encoder: Encoder,
              negatives: Sequence[np.ndarray], settings: PipelineSettings, target_per_hour: float = TARGET_FA_PER_HOUR,
              kind: str = HIDDEN, centre: np.ndarray | None = None, scale: float | tuple[float, float] | None = None,
              bundled: np.ndarray | None = None, take_spellings: Sequence[str] = ()) -> tuple[Calibration, Spelling | None]:
    """Leave-one-out scores of the takes and the scores of keyword-free speech (the bundled
    speech and ``negatives``), through the real pipeline. ``bundled``: the bundled speech's scores, where they are
    known already (``scaled``).

    ``take_spellings``: what each take reads as (``FUSED``). Where they agree on a spelling (``agreed_spelling``) and
    the model has typed keywords' thresholds, it is scored too: at ``stricter_than_typed`` of the typed keyword's, or
    where the keyword-free speech reads it at the target rate if that is higher (dropped where that reaches 1). The
    threshold still comes from the match alone; the expected recall and false alarms from both paths at it (each
    take with the others' spelling where it is the same). Returns the calibration and the spelling (None: none)."""
    if take_spellings and bundled is not None:
        raise ValueError("a keyword that may have a spelling scores the bundled speech itself: leave out `bundled`")
    text = agreed_spelling(take_spellings)
    typed = model_calibration(encoder) if text is not None else None
    text = text if typed is not None else None

    def scorer(takes: list[np.ndarray], spelled: str | None) -> PathScores:
        enrolled = EnrolledScorer([name], [layer], [takes], [None], [kind], encoder.blank_id, letter_count(encoder), [centre], [scale])
        return PathScores(enrolled, None if spelled is None else typed_scorer(encoder, [spelled]))

    def same_text(i: int) -> str | None:
        """``text`` where the other takes agree on it too, so that take i is heard as they would find it."""
        return text if text is not None and agreed_spelling([s for j, s in enumerate(take_spellings) if j != i]) == text else None

    heard_takes = [heard(e.audio, scorer([f for j, f in enumerate(features) if j != i], same_text(i)), encoder, settings)
                   for i, e in enumerate(examples)]
    positives = [float(heard_scores(w, settings.detector).max(initial=0.0)) for w in heard_takes]
    check_positives(positives)  # before the slower negatives
    speech = read_audio(NEGATIVE_SPEECH)
    everyone = scorer(list(features), text)
    heard_speech = [heard(audio, everyone, encoder, settings) for audio in ([] if bundled is not None else [speech]) + list(negatives)]
    matched = np.concatenate([[] if bundled is None else bundled, *(heard_scores(w, settings.detector) for w in heard_speech)])
    hours = sum(len(audio) for audio in [speech, *negatives]) / SAMPLE_RATE / 3600
    calibration = calibrate_threshold(positives, matched, hours, target_per_hour, FLOOR_FRACTIONS.get(kind, FLOOR_FRACTION))
    if text is None:
        return calibration, None
    read = np.concatenate([compared_scores(w, SPELLED, settings.detector) for w in heard_speech])
    spelling = spelling_at(text, typed.threshold_for(text), read, hours, target_per_hour)
    if spelling is None:
        return calibration, None
    both = (calibration.threshold, spelling.threshold)
    joined = np.concatenate([heard_scores(w, settings.detector, both) for w in heard_speech])
    found = [float(heard_scores(w, settings.detector, both if same_text(i) else None).max(initial=0.0)) for i, w in enumerate(heard_takes)]
    return replace(calibration, method=f"{calibration.method}; its spelling at {spelling.threshold:.2f}",
                   negatives_max=float(joined.max(initial=0.0)), expected_recall=float(np.mean(np.array(found) >= calibration.threshold)),
                   expected_fa_per_hour=false_alarms_per_hour(joined, hours, calibration.threshold)), spelling


def enroll(name: str, recordings: Sequence[tuple[np.ndarray, str]], encoder: Encoder, settings: PipelineSettings,
           layer: int | None = None, negatives: Sequence[np.ndarray] = (),
           enroll_settings: EnrollSettings = EnrollSettings(), target_per_hour: float = TARGET_FA_PER_HOUR,
           kind: str | None = None) -> EnrolledKeyword:
    """A calibrated keyword from (audio, source) examples; nothing is written here.

    ``kind``: what is matched; by default the letter posteriors and hidden states together where the
    model has a CTC head and no ``layer`` is asked for (they rank the word best on the development
    speakers, docs/enrollment.md), else hidden states, which it falls back to where the takes do
    not match in letters (a word the model's alphabet cannot spell). ``VOICE`` (asked for, never the default): letters
    and hidden states as by default, and the speech embedding beside them on a path of its own, which found the
    enrolling speaker's word more often and other speakers' less (docs/enrollment.md). The takes' agreement is
    judged on hidden states either way (where it was measured). A ``FUSED`` keyword whose takes read alike also keeps
    that spelling (``calibrate``)."""
    defaulted = kind is None
    if kind is None:
        kind = FUSED if encoder.has_ctc_head and layer is None else HIDDEN
    if kind != HIDDEN and not encoder.has_ctc_head:
        raise EnrollmentError(f"model {encoder.name} has no CTC head: enroll with its hidden states (--layer)")
    layer = default_layer(encoder, "enrolled") if layer is None else layer
    encoder.check_layer(layer)
    examples = [prepare(audio, source, enroll_settings, seed=i) for i, (audio, source) in enumerate(recordings)]
    check_examples(examples)
    hidden = [example_features(encoder, e, layer, enroll_settings) for e in examples]
    check_agreement(examples, hidden, speech_pieces(encoder, layer))
    centre = None if kind == LETTERS else feature_centre(encoder, layer)
    features = [h - centre for h in hidden] if kind == HIDDEN else [example_features(encoder, e, layer, enroll_settings, kind, centre)
                                                                    for e in examples]
    # the letters + hidden states' takes also teach a spelling, where they read alike (``kwstream.keywords.enrolled.spelled``)
    take_spellings = [take_spelling(encoder, e, layer, enroll_settings) for e in examples] if kind == FUSED else []
    try:
        scale, calibration, spelling = scaled_calibration(name, examples, features, layer, encoder, negatives, settings,
                                                          target_per_hour, kind, centre, take_spellings)
    except TakesDisagree:
        if not defaulted or kind == HIDDEN:
            raise
        # the takes agree in hidden states but not in letters: a word the model's alphabet does not spell
        # (another language, noisy takes); hidden states make no assumption about it
        kind, features = HIDDEN, [h - centre for h in hidden]
        scale, calibration, spelling = scaled_calibration(name, examples, features, layer, encoder, negatives, settings,
                                                          target_per_hour, kind, centre)
    return EnrolledKeyword(name, layer, calibration.threshold, encoder.fingerprint, encoder.name, features,
                           [e.source for e in examples], calibration.as_dict(), kind, centre, scale, spelling)


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
