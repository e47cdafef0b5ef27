"""Which matching finds an enrolled word: layer embeddings or CTC posteriorgrams, one template or several.

Development material only (FSDD): each digit is enrolled from recordings 0-2 of one speaker and
looked for in the listening speaker's recordings 3-49 of all ten digits (theo -> theo: the same
speaker; jackson -> lucas, nicolas: other speakers). Every recording is encoded once as enrollment
encodes a take (padded, VAD-trimmed, with 0.4 s of context); a test recording's score is its
templates' best subsequence-DTW match over its speech and context, as one scoring window sees a
word. One threshold is shared by the ten digits; false alarms per hour are counted over the other
digits' recordings taken as a stream with a 1 s pause after each word, per keyword. The calibrated
columns use each keyword's threshold from the bundled keyword-free speech (``kwstream.enroll.calibration``),
with and without the enrolling speaker's own (the other nine digits, takes 0-2, as ``--negatives``),
scored in 1.5 s windows every 0.25 s, as listen's windows are, and the leave-one-out scores of the takes.

    python -m benchmarks.enroll_methods [--fsdd ../shared/data/fsdd]
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
from kwstream.enroll.calibration import FLOOR_FRACTION, calibrate_threshold
from kwstream.keywords.enrolled.store import EnrollmentError
from kwstream.enroll.enroll import EnrollSettings, prepare
from kwstream.keywords.enrolled.scorer import letter_posteriors, subsequence_dtw, unit_rows
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.assets import MODEL_DIR

PAUSE_S = 1.0
RATES = (0.5, 1.0, 2.0)
CASES = [("theo -> theo (same speaker)", "theo", ("theo",)), ("jackson -> lucas, nicolas", "jackson", ("lucas", "nicolas"))]


@dataclass(frozen=True)
class Clip:
    embedding: np.ndarray
    posteriors: np.ndarray
    letters: np.ndarray
    """``posteriors`` without the blank (``letter_posteriors``: what enrollment matches by default)."""
    speech: slice
    """Frames of the trimmed speech inside the encoded stretch (templates keep only these)."""
    seconds: float


def encode_clip(encoder: Encoder, audio: np.ndarray, layer: int, settings: EnrollSettings) -> Clip:
    example = prepare(audio, "clip", settings)
    spf, context = encoder.samples_per_frame, int(settings.context_s * SAMPLE_RATE)
    first = max(0, example.start_sample - context)
    frames = encoder.encode(example.audio[first:example.stop_sample + context], (layer,))
    start = (example.start_sample - first) // spf
    stop = max(start + 1, min(len(frames), math.ceil((example.stop_sample - first) / spf)))
    return Clip(frames.features[layer], np.exp(frames.log_probs), letter_posteriors(frames.log_probs, encoder.blank_id), slice(start, stop),
                len(audio) / SAMPLE_RATE)


def cosine_distance(template: np.ndarray, window: np.ndarray) -> np.ndarray:
    return 1.0 - unit_rows(template) @ unit_rows(window).T


def posteriorgram_distance(template: np.ndarray, window: np.ndarray) -> np.ndarray:
    """-log of the probability that two frames hold the same token (the classic posteriorgram distance)."""
    return -np.log(np.clip(template @ window.T, 1e-5, 1.0))


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
    "CTC posteriorgram, best template": ("posteriors", posteriorgram_distance, np.min),
    "CTC posteriorgram, mean of templates": ("posteriors", posteriorgram_distance, np.mean),
    "CTC posteriorgram without blank, best template": ("letters", posteriorgram_distance, np.min),
    "CTC posteriorgram without blank, mean of templates": ("letters", posteriorgram_distance, np.mean),
}


def score(kind: str, distance: Callable, pool: Callable, templates: list[Clip], window: np.ndarray) -> float:
    cost = pool(match_costs([getattr(t, kind)[t.speech] for t in templates], window, distance))
    # the same map to [0, 1] for both: 1 - 2 * mean cosine distance; exp(-cost) = geometric mean of p.q
    return float(np.clip(1 - 2 * cost, 0, 1)) if kind == "embedding" else float(np.exp(-cost))


def window_frames(kind: str, frames, layer: int, blank: int) -> np.ndarray:
    """A negative window's frames for ``kind``."""
    if kind == "embedding":
        return frames.features[layer]
    return np.exp(frames.log_probs) if kind == "posteriors" else letter_posteriors(frames.log_probs, blank)


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
    parser.add_argument("--test-indices", default="3-49")
    parser.add_argument("--floors", default=f"{FLOOR_FRACTION}", help="comma-separated floor fractions, one calibrated column each")
    args = parser.parse_args()
    lo, hi = map(int, args.test_indices.split("-"))
    columns = [(float(f), own) for own in (False, True) for f in args.floors.split(",")]
    encoder = Encoder(EncoderSettings(model=str(MODEL_DIR), threads=1))
    layer, settings = encoder.layers - 1, EnrollSettings()
    recordings = args.fsdd / "recordings"
    cache: dict[str, Clip] = {}

    def clip(name: str) -> Clip:
        if name not in cache:
            cache[name] = encode_clip(encoder, read_audio(recordings / f"{name}.wav"), layer, settings)
        return cache[name]

    negative_audio = read_audio(NEGATIVE_SPEECH)
    hop, width = SAMPLE_RATE // 4, int(1.5 * SAMPLE_RATE)
    negative_windows = [encoder.encode(negative_audio[s:s + width], (layer,)) for s in range(0, len(negative_audio) - width, hop)]
    negative_hours = len(negative_audio) / SAMPLE_RATE / 3600
    calibrated = " | ".join(f"calibrated{' + own negatives' if own else ''}, floor {f:g} (recall, FA/h)" for f, own in columns)
    print(f"| case | method | recall at 0.5 FA/h | at 1 FA/h | at 2 FA/h | {calibrated} |")
    print("| --- | --- | --- | --- | --- |" + " --- |" * len(columns))
    for case, enroller, listeners in CASES:
        tests = [(d, f"{d}_{s}_{i}") for s in listeners for d in range(10) for i in range(lo, hi + 1)]
        for method, (kind, distance, pool) in METHODS.items():
            pos, neg, hours = [], [], 0.0
            calibrated_hits, calibrated_fas = [[] for _ in columns], [0] * len(columns)
            for digit in range(10):
                templates = [clip(f"{digit}_{enroller}_{i}") for i in range(3)]
                scores = np.array([score(kind, distance, pool, templates, getattr(clip(n), kind)) for _, n in tests])
                is_digit = np.array([d == digit for d, _ in tests])
                pos.append(scores[is_digit])
                neg.append(scores[~is_digit])
                hours += sum(clip(n).seconds + PAUSE_S for d, n in tests if d != digit) / 3600
                window_scores = np.array([score(kind, distance, pool, templates, window_frames(kind, w, layer, encoder.blank_id))
                                          for w in negative_windows])
                # "your own keyword-free speech" (--negatives): the enrolling speaker's other nine digits, takes 0-2 (never tested)
                own = np.array([score(kind, distance, pool, templates, getattr(clip(f"{d}_{enroller}_{i}"), kind))
                                for d in range(10) if d != digit for i in range(3)])
                own_hours = negative_hours + sum(clip(f"{d}_{enroller}_{i}").seconds + PAUSE_S
                                                 for d in range(10) if d != digit for i in range(3)) / 3600
                loo = [score(kind, distance, pool, templates[:i] + templates[i + 1:], getattr(t, kind)) for i, t in enumerate(templates)]
                for f, (floor, with_own) in enumerate(columns):
                    negatives = np.concatenate([window_scores, own]) if with_own else window_scores
                    try:
                        threshold = calibrate_threshold(loo, negatives, own_hours if with_own else negative_hours,
                                                        floor_fraction=floor).threshold
                    except EnrollmentError:  # enrollment would refuse these takes: nothing is spotted
                        threshold = np.inf
                    calibrated_hits[f].append(scores[is_digit] >= threshold)
                    calibrated_fas[f] += int((scores[~is_digit] >= threshold).sum())
            pos_all, neg_all = np.concatenate(pos), np.concatenate(neg)
            cells = [f"{recall_at(pos_all, neg_all, hours, r):.2f}" for r in RATES]
            cells += [f"{np.concatenate(hits).mean():.2f}, {fas / hours:.1f}" for hits, fas in zip(calibrated_hits, calibrated_fas)]
            print(f"| {case} | {method} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
