"""An enrolled keyword's threshold from keyword-free speech, at a target rate of false alarms.

Three takes cannot say where a threshold belongs: their scores against each other say how alike
the takes are, not how high unrelated speech scores. So the threshold comes from negatives:
speech that does not hold the keyword (the package's ``assets/negatives``, and the user's own),
scored exactly as ``listen`` scores it. Each score the detector compares with a threshold counts
as a possible false alarm (conservative: one firing spans one window or more). Where the negatives
are long enough to count ``COUNTED_MIN`` false alarms at the target rate, the empirical count
decides; otherwise (a few minutes of speech cannot show a rate of one in two hours) a normal tail
fitted to the scores extrapolates, never below what the count allows: real speech's scores have a
longer tail than a normal one, and a threshold under scores the negatives do reach would fire on
them far more often than the target (measured: 63 false alarms/h on the bundled speech, docs/enrollment.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from kwstream.keywords.enrolled.store import EnrollmentError

TARGET_FA_PER_HOUR = 0.5
MIN_AGREEMENT = 0.1
"""Lowest leave-one-out score accepted: below it a take does not resemble the others at all
(another word, a bad take, or a model whose features mean nothing)."""
FLOOR_FRACTION = 0.9
"""By default the threshold never goes below this share of the lowest leave-one-out score, however low the
negatives score: the takes' own scores set a floor, not the threshold (``kwstream.enroll.enroll.FLOOR_FRACTIONS``
lowers it for letters + hidden states)."""
TAIL_SAMPLES_MIN = 5
"""Fewer nonzero negative scores than this cannot fit a tail: the highest one, plus a margin, is used."""
SPARSE_MARGIN = 0.05
COUNTED_MIN = 10
"""False alarms the negatives must allow at the target rate for the count, not the tail, to decide."""


def threshold_for_rate(scores: np.ndarray, hours: float, target_per_hour: float = TARGET_FA_PER_HOUR) -> float:
    """The lowest threshold in [0, 1] at which ``scores`` (possible firings heard over ``hours``)
    would reach it at most ``target_per_hour`` times an hour."""
    scores = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(scores) > 0])[::-1]
    if len(scores) < TAIL_SAMPLES_MIN:
        return float(min(1.0, (scores[0] if len(scores) else 0.0) + SPARSE_MARGIN))
    allowed = int(target_per_hour * hours)
    if allowed >= len(scores):
        return 0.0
    if allowed >= COUNTED_MIN:
        return float(scores[allowed] + 1e-6)
    tail = NormalDist(float(scores.mean()), max(float(scores.std()), 1e-6)).inv_cdf(1 - target_per_hour * hours / len(scores))
    return float(np.clip(max(tail, scores[allowed] + 1e-6), 0.0, 1.0))


def false_alarms_per_hour(scores: np.ndarray, hours: float, threshold: float) -> float:
    """Expected false alarms an hour at ``threshold``: the count where there is one, else the fitted tail's."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[scores > 0]
    counted = float((scores >= threshold).sum()) / hours
    if counted > 0 or len(scores) < TAIL_SAMPLES_MIN:
        return counted
    tail = 1 - NormalDist(float(scores.mean()), max(float(scores.std()), 1e-6)).cdf(threshold)
    return len(scores) / hours * tail




@dataclass(frozen=True)
class Calibration:
    threshold: float
    method: str
    positives: list[float]
    """Leave-one-out score of each take."""
    negative_hours: float
    negatives_max: float
    expected_recall: float
    """Share of the takes that the other takes find at the threshold (leave one out; with a spelling, by either path,
    while ``positives`` stay the match's)."""
    expected_fa_per_hour: float
    """On the negatives, counted or (beyond them) from the fitted tail."""
    from_negatives: float
    """The threshold the negatives alone set, before the floor (a voice keyword among rivals listens at a lower floor
    over it: ``kwstream.keywords.enrolled.store.listening_threshold``)."""

    def as_dict(self) -> dict:
        return {"method": self.method, "from_negatives": round(self.from_negatives, 4), "leave_one_out": [round(p, 4) for p in self.positives],
                "negative_hours": round(self.negative_hours, 4), "negatives_max": round(self.negatives_max, 4),
                "expected_recall": round(self.expected_recall, 3), "expected_fa_per_hour": round(self.expected_fa_per_hour, 3)}


class TakesDisagree(EnrollmentError):
    """The takes' leave-one-out scores are below ``MIN_AGREEMENT``."""


def check_positives(positives: list[float]) -> None:
    if min(positives) < MIN_AGREEMENT:
        raise TakesDisagree(
            f"the takes do not resemble each other (leave-one-out scores {', '.join(f'{p:.2f}' for p in positives)}, "
            f"each should be at least {MIN_AGREEMENT}): record them again, the same word each time")


def calibrate_threshold(positives: list[float], negatives: np.ndarray, hours: float,
                        target_per_hour: float = TARGET_FA_PER_HOUR, floor_fraction: float = FLOOR_FRACTION) -> Calibration:
    """The threshold for ``target_per_hour`` false alarms on ``negatives`` (scores heard over
    ``hours``), never below ``floor_fraction`` of the lowest of ``positives``."""
    check_positives(positives)
    low = min(positives)
    from_negatives = threshold_for_rate(negatives, hours, target_per_hour)
    floor = floor_fraction * low
    if from_negatives >= floor:
        threshold, method = from_negatives, f"{target_per_hour:g} false alarms/h on {hours * 60:.1f} min of keyword-free speech"
    else:
        threshold, method = floor, f"floor: {floor_fraction:g} x the lowest leave-one-out score (the negatives allow lower)"
    threshold = round(threshold, 4)
    return Calibration(threshold, method, list(positives), hours, float(np.max(negatives, initial=0.0)),
                       float(np.mean(np.asarray(positives) >= threshold)), false_alarms_per_hour(negatives, hours, threshold),
                       from_negatives)
