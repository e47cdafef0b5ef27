"""Which matching finds an enrolled word: layer embeddings or CTC posteriorgrams, one template or several.

Development material only. FSDD: each digit is enrolled from recordings 0-2 of one speaker and
looked for in the listening speaker's recordings 3-49 of all ten digits (theo -> theo: the same
speaker; jackson -> lucas, nicolas: other speakers). wwb: "jarvis" from 3 clips, looked for among 100
more and 100 of each other phrase (no speaker ids: the takes' speakers may or may not recur). Speech Commands
(``--cases commands``): each digit from 3 clips of three speakers, looked for among 7 clips of each of the 30 words
(its own by 7 other speakers; the words are each other's near misses: three/tree, two/up...). Every recording is encoded once as enrollment
encodes a take (padded, VAD-trimmed, with 0.4 s of context); a test recording's score is its
templates' best subsequence-DTW match over its speech and context, as one scoring window sees a
word. One threshold is shared by a case's keywords; false alarms per hour are counted over the other
words' recordings taken as a stream with a 1 s pause after each word, per keyword. The calibrated
columns use each keyword's threshold from keyword-free speech (``kwstream.enroll.calibration``; the
bundled asset, or each of ``--negatives``), with and without the enrolling speaker's own (the other
nine digits, takes 0-2, as ``--negatives``), scored in 1.5 s windows every 0.25 s, as listen's windows
are, and the leave-one-out scores of the takes.

"Voice" is Google's speech embedding (``kwstream.model.speech_embedding``: openWakeWord's, trained on far more
voices than the bundled model), beside each frame the window of the 0.79 s of audio up to its end, as enrollment
and the pipeline compute it; its cosine distances are scored as centred hidden states are (0 at the mean distance
of the bundled speech). "Letters + hidden states + voice"
averages that score with the letters + hidden states' own, scaled alike (each part's best path on its own). "Or the
spelling the takes agree on" is what enrollment ships by default: where most takes read alike (greedy CTC), a test
recording also scores as that typed keyword (``SpelledOr``), at the threshold enrollment gives it; each calibrated
column joins it at that column's threshold (which comes from the match alone, as in enrollment), the shared
thresholds at the first column's.

    python -m benchmarks.enroll_methods [--fsdd ../shared/data/fsdd] [--wwb ../shared/data/wwb] [--cases fsdd,wwb,commands]
        [--methods "without blank, best;summed"] [--negatives A.ogg B.ogg] [--floors 0.5,0.9] [--model DIR] [--no-centre]
        [--voice-step 8]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwstream.assets import NEGATIVE_SPEECH
from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.enroll.calibration import FLOOR_FRACTION, TARGET_FA_PER_HOUR, calibrate_threshold
from kwstream.keywords.enrolled.store import EnrollmentError
from kwstream.enroll.enroll import FLOOR_FRACTIONS, EnrollSettings, feature_centre, prepare, spelling_at
from kwstream.keywords.enrolled.spelled import agreed_spelling, combined_score, greedy_spelling
from kwstream.keywords.keyword_set import model_calibration, typed_scorer
from kwstream.keywords.base import default_layer
from kwstream.keywords.enrolled.scorer import CENTRED_SCALE, FUSED, UNCENTRED_SCALE, hidden_score, letter_posteriors, subsequence_dtw, unit_rows
from kwstream.model.encoder import EncodedFrames, Encoder, EncoderSettings
from kwstream.model.speech_embedding import STEP_FRAMES, SpeechEmbedding
from kwstream.assets import MODEL_DIR

PAUSE_S = 1.0
RATES = (0.5, 1.0, 2.0)
FSDD_CASES = [("theo -> theo (same speaker)", "theo", ("theo",)), ("jackson -> lucas, nicolas", "jackson", ("lucas", "nicolas"))]
WWB_PHRASES = ("jarvis", "alexa", "smart_mirror", "snowboy", "view_glass")
WWB_PER_PHRASE = 100


@dataclass(frozen=True)
class Keyword:
    label: str
    takes: list[Path]
    own: list[Path]
    """The enrolling speaker's keyword-free speech (``--negatives`` of their own), never tested."""


@dataclass(frozen=True)
class Case:
    title: str
    keywords: list[Keyword]
    tests: list[tuple[str, Path]]
    """(label, recording): a keyword's positives where the label is its own, false alarms elsewhere."""


def fsdd_case(title: str, enroller: str, listeners: tuple[str, ...], recordings: Path, lo: int, hi: int) -> Case:
    """Each digit from ``enroller``'s takes 0-2, the others' (own) as their own negatives; tests: ``listeners``' takes lo-hi."""
    take = lambda d, s, i: recordings / f"{d}_{s}_{i}.wav"  # noqa: E731
    keywords = [Keyword(str(d), [take(d, enroller, i) for i in range(3)],
                        [take(o, enroller, i) for o in range(10) if o != d for i in range(3)]) for d in range(10)]
    return Case(title, keywords, [(str(d), take(d, s, i)) for s in listeners for d in range(10) for i in range(lo, hi + 1)])


def wwb_case(wwb: Path) -> Case:
    """"jarvis" from the first 3 of its clips (by name; no speaker ids, so whose voices is unknown), looked for
    among its next ``WWB_PER_PHRASE`` and as many of each other phrase's."""
    clips = {phrase: sorted((wwb / phrase).glob("*.flac")) for phrase in WWB_PHRASES}
    tests = [(phrase, path) for phrase in WWB_PHRASES for path in clips[phrase][3:3 + WWB_PER_PHRASE]]
    return Case("wwb jarvis (speakers unknown)", [Keyword("jarvis", clips["jarvis"][:3], [])], tests)


COMMAND_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
"""The Speech Commands words that may be enrolled here: the bundled negatives hold the other words' first clips."""


def commands_case(commands: Path) -> Case:
    """Each Speech Commands digit from its first 3 clips by name (three speakers), looked for among clips 3-9 of
    all 30 words. A word's 10 clips are 10 speakers', so every positive is a speaker the takes are not; speakers
    recur across words, so a few false-alarm tests are (74 of 2,030 pairs of a digit and a test of another word)."""
    clips = {d.name: sorted(d.glob("*.flac")) for d in sorted(commands.iterdir()) if d.is_dir()}
    keywords = [Keyword(word, clips[word][:3], []) for word in COMMAND_DIGITS]
    return Case("Speech Commands digits, 3 speakers -> 7 others", keywords,
                [(word, p) for word, paths in clips.items() for p in paths[3:]])


@dataclass(frozen=True)
class Clip:
    embedding: np.ndarray
    centred: np.ndarray
    """``embedding`` less the layer's mean over the bundled speech (``feature_centre``), as fused keywords compare it."""
    posteriors: np.ndarray
    letters: np.ndarray
    """``posteriors`` without the blank (``letter_posteriors``: what enrollment matches by default)."""
    voice: np.ndarray | None
    """The speech embedding beside each frame (``SpeechEmbedding.frames``); None unless a voice method runs."""
    speech: slice
    """Frames of the trimmed speech inside the encoded stretch (templates keep only these)."""
    seconds: float

    @property
    def fused(self) -> np.ndarray:
        """Letters and unit hidden states side by side (``fused_distance`` splits them again)."""
        return np.hstack([self.letters, unit_rows(self.centred)])


def encode_clip(encoder: Encoder, embedding: SpeechEmbedding | None, audio: np.ndarray, layer: int, settings: EnrollSettings,
                centre: np.ndarray, voice_step: int) -> Clip:
    example = prepare(audio, "clip", settings)
    spf, context = encoder.samples_per_frame, int(settings.context_s * SAMPLE_RATE)
    first = max(0, example.start_sample - context)
    frames = encoder.encode(example.audio[first:example.stop_sample + context], (layer,))
    start = (example.start_sample - first) // spf
    stop = max(start + 1, min(len(frames), math.ceil((example.stop_sample - first) / spf)))
    return Clip(frames.features[layer], frames.features[layer] - centre, np.exp(frames.log_probs), letter_posteriors(frames.log_probs, encoder.blank_id),
                None if embedding is None else embedding.frames(lambda a, b: example.audio[a:b], first, len(frames), spf, voice_step),
                slice(start, stop),
                len(audio) / SAMPLE_RATE)


@dataclass(frozen=True)
class Window:
    """One 1.5 s window of keyword-free speech: the encoder's frames and the speech embedding beside them."""
    frames: EncodedFrames
    voice: np.ndarray | None


def cosine_distance(template: np.ndarray, window: np.ndarray) -> np.ndarray:
    return 1.0 - unit_rows(template) @ unit_rows(window).T


def posteriorgram_distance(template: np.ndarray, window: np.ndarray) -> np.ndarray:
    """-log of the probability that two frames hold the same token (the classic posteriorgram distance)."""
    return -np.log(np.clip(template @ window.T, 1e-5, 1.0))


def fused_distance(template: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Letter-posteriorgram distance plus cosine distance of the hidden states (``Clip.fused`` rows)."""
    letters = len(template[0]) - HIDDEN_SIZE
    return (posteriorgram_distance(template[:, :letters], window[:, :letters])
            + cosine_distance(template[:, letters:], window[:, letters:]))


def match_costs(templates: list[np.ndarray], window: np.ndarray, distance: Callable) -> np.ndarray:
    """Each template's best mean-distance subsequence-DTW path through the window (inf where none fits)."""
    costs = []
    for t in templates:
        cost, _ = subsequence_dtw(distance(t, window)[None].astype(np.float32), np.array([len(t)]))
        costs.append(float(cost.min()))
    return np.array(costs)


METHODS = {
    "embeddings (layer), best template": ("embedding", cosine_distance, np.min),
    "embeddings (layer), mean of templates": ("embedding", cosine_distance, np.mean),
    "embeddings (layer) centred, best template": ("centred", cosine_distance, np.min),
    "CTC posteriorgram, best template": ("posteriors", posteriorgram_distance, np.min),
    "CTC posteriorgram, mean of templates": ("posteriors", posteriorgram_distance, np.mean),
    "CTC posteriorgram without blank, best template": ("letters", posteriorgram_distance, np.min),
    "CTC posteriorgram without blank, mean of templates": ("letters", posteriorgram_distance, np.mean),
    "letters + hidden states (summed distances), best template": ("fused", fused_distance, np.min),
    "letters + hidden states, or the spelling the takes agree on (the default)": ("fused+spelled", fused_distance, np.min),
    "voice (speech embedding), best template": ("voice", cosine_distance, np.min),
    "letters + hidden states + voice (scores averaged), best template": ("fused+voice", None, np.min),
}
SCALED = ("centred", "voice")
"""Kinds scored 0 at the mean distance of the bundled speech (``rescale``)."""
HIDDEN_SIZE = 0
"""The encoder's hidden size, set in ``main`` (``fused_distance`` needs it)."""
ENCODER: Encoder | None = None
NEGATIVE_HOURS = 0.0
"""The encoder and the first negatives' length, set in ``main`` (``spelled_scores`` needs them)."""


def score(kind: str, distance: Callable, pool: Callable, templates: list[Clip], window: np.ndarray) -> float:
    cost = pool(match_costs([getattr(t, kind)[t.speech] for t in templates], window, distance))
    # the scorer's maps to [0, 1]: hidden_score for hidden states (centred and voice: at CENTRED_SCALE, ``rescale``
    # then sets the keyword's own); exp(-cost) = geometric mean of p.q
    if kind in ("embedding", *SCALED):
        return float(hidden_score(cost, UNCENTRED_SCALE if kind == "embedding" else CENTRED_SCALE))
    return float(np.exp(-cost))


def rescale(scores: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Centred hidden-state ``scores`` (at ``CENTRED_SCALE``) at the keyword's scale, as enrollment's
    ``SpeechMatches.hidden_scale`` sets it: the mean distance at which keyword-free ``speech`` (scores alike) matches it."""
    scale = CENTRED_SCALE * (1.0 - float(np.mean(speech)))
    return hidden_score(CENTRED_SCALE * (1.0 - np.asarray(scores, dtype=np.float64)), scale)


def window_frames(kind: str, window: Window, layer: int, blank: int, centre: np.ndarray) -> np.ndarray:
    """A negative window's frames for ``kind`` (fused: hidden states less ``centre``, as enrollment's)."""
    frames = window.frames
    if kind == "voice":
        return window.voice
    if kind in ("embedding", "centred"):
        return frames.features[layer] - (centre if kind == "centred" else 0.0)
    if kind == "fused":
        return np.hstack([letter_posteriors(frames.log_probs, blank), unit_rows(frames.features[layer] - centre)])
    return np.exp(frames.log_probs) if kind == "posteriors" else letter_posteriors(frames.log_probs, blank)


def keyword_scores(kind: str, distance: Callable, pool: Callable, templates: list[Clip], tests: list[Clip], own: list[Clip],
                   negative_windows: list[list[Window]], layer: int, blank: int, centre: np.ndarray) -> list:
    """One keyword's scores: of the test clips, of each set of negative windows, of its enroller's own negatives and
    of its takes left out one at a time (scaled kinds at the keyword's scale from the first negatives)."""
    if kind == "fused+spelled":
        return spelled_scores(keyword_scores("fused", distance, pool, templates, tests, own, negative_windows, layer, blank, centre),
                              templates, tests, negative_windows)
    if kind == "fused+voice":  # each part scored on its own path, scaled alike (0 at the bundled speech's mean), then averaged
        fused = keyword_scores("fused", fused_distance, pool, templates, tests, own, negative_windows, layer, blank, centre)
        voice = keyword_scores("voice", cosine_distance, pool, templates, tests, own, negative_windows, layer, blank, centre)
        cost = lambda scores: -np.log(np.maximum(scores, 1e-300))  # noqa: E731  fused scores are exp(-cost)
        speech_cost = float(np.mean(cost(fused[1][0])))
        scaled = lambda scores: hidden_score(cost(scores), speech_cost)  # noqa: E731  1 - cost / speech's, as voice_score
        return [(scaled(fused[0]) + voice[0]) / 2, [(scaled(f) + v) / 2 for f, v in zip(fused[1], voice[1])],
                (scaled(fused[2]) + voice[2]) / 2, (scaled(fused[3]) + voice[3]) / 2]
    scores = np.array([score(kind, distance, pool, templates, getattr(c, kind)) for c in tests])
    window_scores = [np.array([score(kind, distance, pool, templates, window_frames(kind, w, layer, blank, centre)) for w in windows])
                     for windows in negative_windows]
    own_scores = np.array([score(kind, distance, pool, templates, getattr(c, kind)) for c in own])
    loo = np.array([score(kind, distance, pool, templates[:i] + templates[i + 1:], getattr(t, kind)) for i, t in enumerate(templates)])
    if kind in SCALED:  # the bundled speech (the first --negatives) sets the scale, as in enrollment
        scores, own_scores, loo, *window_scores = [rescale(x, window_scores[0]) for x in (scores, own_scores, loo, *window_scores)]
    return [scores, window_scores, own_scores, loo]


def spelled_scores(fused: list, templates: list[Clip], tests: list[Clip], negative_windows: list[list[Window]]) -> list:
    """``fused`` (``keyword_scores``' four) and, where the takes agree on a spelling, a fifth: each test's reading of
    it and its threshold, to join with the match's at each column's threshold (``combined_score``; enrollment's
    threshold comes from the match alone). The spelling's threshold is ``spelling_at``'s as enrollment sets it, but
    from the first negatives' windows as the benchmark scores them (each window alone, not the detector's), for
    every column."""
    spellings = [greedy_spelling(log(t.posteriors[t.speech]), ENCODER.tokens, ENCODER.blank_id, ENCODER.delimiter_id) for t in templates]
    text, typed = agreed_spelling(spellings), model_calibration(ENCODER)
    if text is None or typed is None:
        return fused
    read = typed_scorer(ENCODER, [text])
    negatives = np.array([read.score(w.frames.log_probs)[0].score for w in negative_windows[0]])
    spelling = spelling_at(text, typed.threshold_for(text), negatives, NEGATIVE_HOURS, TARGET_FA_PER_HOUR)
    if spelling is None:
        return fused
    return [*fused, (np.array([read.score(log(c.posteriors))[0].score for c in tests]), spelling.threshold)]


def log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(probabilities, 1e-30))


def recall_at(pos: np.ndarray, neg: np.ndarray, hours: float, rate: float) -> float:
    """Recall at the lowest shared threshold whose false alarms per keyword-hour stay within ``rate``
    (``hours``: the keywords' negative hours summed)."""
    allowed = int(rate * hours)
    ranked = np.sort(neg.ravel())[::-1]
    threshold = ranked[allowed] + 1e-9 if allowed < len(ranked) else 0.0
    return float((pos >= threshold).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd")
    parser.add_argument("--wwb", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "wwb")
    parser.add_argument("--commands", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands")
    parser.add_argument("--cases", default="fsdd,wwb",
                        help="comma-separated: fsdd (theo -> theo, jackson -> lucas, nicolas), wwb (jarvis), commands (Speech Commands)")
    parser.add_argument("--test-indices", default="3-49")
    parser.add_argument("--floors", default=f"{FLOOR_FRACTIONS[FUSED]:g},{FLOOR_FRACTION:g}",
                        help="comma-separated floor fractions, one calibrated column each (default: the shipped ones, letters + "
                             "hidden states' and the other kinds')")
    parser.add_argument("--methods", default="", help="';'-separated parts of methods' names: the methods holding one (default: all)")
    parser.add_argument("--negatives", type=Path, nargs="+", default=[NEGATIVE_SPEECH],
                        help="keyword-free speech to calibrate on, one set of calibrated columns each (default: the bundled asset)")
    parser.add_argument("--model", type=Path, default=MODEL_DIR)
    parser.add_argument("--voice-step", type=int, default=STEP_FRAMES,
                        help="voice: mel frames (10 ms) between speech-embedding windows (default: as enrollment and listen)")
    parser.add_argument("--no-centre", dest="centre", action="store_false",
                        help="fused and centred: cosines of the hidden states as they are, not less their mean over the bundled speech")
    args = parser.parse_args()
    lo, hi = map(int, args.test_indices.split("-"))
    columns = [(n, float(f), own) for n in range(len(args.negatives)) for own in (False, True) for f in args.floors.split(",")]
    methods = {m: v for m, v in METHODS.items() if not args.methods or any(w in m for w in args.methods.split(";"))}
    encoder = Encoder(EncoderSettings(model=str(args.model), threads=1))
    layer, settings = default_layer(encoder, "enrolled"), EnrollSettings()
    centre = feature_centre(encoder, layer) if args.centre else np.float32(0.0)
    embedding = SpeechEmbedding(threads=1) if any("voice" in kind for kind, _, _ in methods.values()) else None
    global HIDDEN_SIZE
    cases = [fsdd_case(*c, args.fsdd / "recordings", lo, hi) for c in FSDD_CASES] if "fsdd" in args.cases else []
    cases += [wwb_case(args.wwb)] if "wwb" in args.cases else []
    cases += [commands_case(args.commands)] if "commands" in args.cases else []
    cache: dict[Path, Clip] = {}

    def clip(path: Path) -> Clip:
        if path not in cache:
            cache[path] = encode_clip(encoder, embedding, read_audio(path), layer, settings, centre, args.voice_step)
        return cache[path]

    def takes_well(path: Path) -> bool:
        """Whether ``path`` passes enrollment's take checks (encoding prepares it as a take)."""
        try:
            clip(path)
        except EnrollmentError:
            return False
        return True

    hop, width = SAMPLE_RATE // 4, int(1.5 * SAMPLE_RATE)
    negative_windows: list[list[Window]] = []
    negative_hours = []
    for path in args.negatives:
        negative_audio = read_audio(path)
        windows = []
        for s in range(0, len(negative_audio) - width, hop):
            frames = encoder.encode(negative_audio[s:s + width], (layer,))
            voice = None if embedding is None else embedding.frames(lambda a, b: negative_audio[a:b], s, len(frames),
                                                                    encoder.samples_per_frame, args.voice_step)
            windows.append(Window(frames, voice))
        negative_windows.append(windows)
        negative_hours.append(len(negative_audio) / SAMPLE_RATE / 3600)
    global ENCODER, NEGATIVE_HOURS
    HIDDEN_SIZE = negative_windows[0][0].frames.features[layer].shape[1]
    ENCODER, NEGATIVE_HOURS = encoder, negative_hours[0]
    calibrated = " | ".join(f"calibrated on {args.negatives[n].name}{' + own negatives' if own else ''}, floor {f:g} (recall, FA/h)"
                            for n, f, own in columns)
    print(f"| case | method | recall at 0.5 FA/h | at 1 FA/h | at 2 FA/h | {calibrated} |")
    print("| --- | --- | --- | --- | --- |" + " --- |" * len(columns))
    for case in cases:
        usable = [(label, p) for label, p in case.tests if takes_well(p)]
        takeable = [k for k in case.keywords if all(takes_well(p) for p in k.takes)]
        enrollable = [Keyword(k.label, k.takes, [p for p in k.own if takes_well(p)]) for k in takeable]
        own_dropped = sum(len(k.own) for k in takeable) - sum(len(k.own) for k in enrollable)
        dropped = len(case.keywords) - len(enrollable)  # a take enrollment refuses: that word is left out (its clips stay)
        notes = []
        if len(usable) < len(case.tests):  # wwb, Speech Commands: a few clipped or silent recordings
            notes.append(f"{len(case.tests) - len(usable)} of {len(case.tests)} clips left out (clipped or silent)")
        if dropped:
            notes.append(f"{dropped} of {len(case.keywords)} words not enrollable")
        if own_dropped:
            notes.append(f"{own_dropped} own negatives left out")
        case = Case(", ".join([case.title, *notes]), enrollable, usable)
        if not enrollable:
            print(f"| {case.title} | no word can be enrolled |", flush=True)
            continue
        for method, (kind, distance, pool) in methods.items():
            pos, neg, hours = [], [], 0.0
            calibrated_hits, calibrated_fas = [[] for _ in columns], [0] * len(columns)
            for keyword in case.keywords:
                matched, window_scores, own, loo, *spelled = keyword_scores(
                    kind, distance, pool, [clip(p) for p in keyword.takes], [clip(p) for _, p in case.tests],
                    [clip(p) for p in keyword.own], negative_windows, layer, encoder.blank_id, centre)

                def heard(threshold: float) -> np.ndarray:
                    """The tests' scores at a keyword ``threshold``: with the spelling read, where there is one."""
                    if not spelled or not np.isfinite(threshold):
                        return matched
                    read, spelling_at = spelled[0]
                    return np.array([combined_score(m, r, threshold, spelling_at) for m, r in zip(matched, read)])

                is_keyword = np.array([label == keyword.label for label, _ in case.tests])
                thresholds = []
                own_hours = sum(clip(p).seconds + PAUSE_S for p in keyword.own) / 3600
                for n, floor, with_own in columns:
                    negatives = np.concatenate([window_scores[n], own]) if with_own else window_scores[n]
                    try:
                        thresholds.append(calibrate_threshold(list(loo), negatives, negative_hours[n] + (own_hours if with_own else 0.0),
                                                              floor_fraction=floor).threshold)
                    except EnrollmentError:  # enrollment would refuse these takes: nothing is spotted
                        thresholds.append(np.inf)
                for f, threshold in enumerate(thresholds):
                    scores = heard(threshold)
                    calibrated_hits[f].append(scores[is_keyword] >= threshold)
                    calibrated_fas[f] += int((scores[~is_keyword] >= threshold).sum())
                scores = heard(thresholds[0])  # the shared thresholds: the spelling joined at the first column's
                pos.append(scores[is_keyword])
                neg.append(scores[~is_keyword])
                hours += sum(clip(p).seconds + PAUSE_S for label, p in case.tests if label != keyword.label) / 3600
            pos_all, neg_all = np.concatenate(pos), np.concatenate(neg)
            cells = [f"{recall_at(pos_all, neg_all, hours, r):.2f}" for r in RATES]
            cells += [f"{np.concatenate(hits).mean():.2f}, {fas / hours:.1f}" for hits, fas in zip(calibrated_hits, calibrated_fas)]
            print(f"| {case.title} | {method} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
