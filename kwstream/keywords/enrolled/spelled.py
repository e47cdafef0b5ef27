"""An enrolled keyword's second path: the spelling its takes agree on, read as a typed keyword is read.

Matching the takes (``EnrolledScorer``) finds the enrolling voice's word best; other voices' words lie further
from the takes, and the floor that keeps the match's false alarms down loses many of them. The CTC head reads
letters in any voice it was trained for, so where the takes decode to one spelling (most of them alike, three
letters or more), that spelling is also scored as a typed keyword, at a stricter threshold than a typed keyword of
that text gets from the model's calibration (``MARGIN``). The keyword fires where either path reaches its own
threshold: the spelled score is shifted so that its threshold lands on the keyword's (``combined_score``), and the
keyword's one threshold serves both (measured on development speakers: docs/enrollment.md, "A spelling learned
from the takes").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kwstream.keywords.base import KeywordMatch
from kwstream.keywords.ctc import CtcKeywordScorer
from kwstream.keywords.enrolled.scorer import EnrolledScorer, closest_only
from kwstream.model.encoder import EncodedFrames

MIN_LETTERS = 3
"""A shorter decoding (a digit's "E", "IX") is a fragment, not the word."""
MARGIN = 1.5
"""The spelling's threshold is the typed keyword's times this (at most 1): typed keywords' thresholds aim at 5 false
alarms per hour on the development speech, enrolled keywords' at 0.5. Chosen on FSDD's development speakers (jackson's
ten digits in lucas's and nicolas's streams, a first form of this code: recall 0.84, 0.81 and 0.80 at 3.3, 2.6 and 1.6
false alarms per hour at 1, 1.3 and 1.5; the takes' match alone 0.73 at 0.7; docs/enrollment.md)."""


def greedy_spelling(log_probs: np.ndarray, tokens: Sequence[str], blank: int, delimiter: int | None) -> str:
    """The CTC head's best letters, frame by frame (repeats, blanks and special tokens dropped, word delimiters as
    spaces), lower case."""
    text, last = [], -1
    for token in np.asarray(log_probs).argmax(axis=1).tolist():
        if token != last and token == delimiter:
            text.append(" ")
        elif token != last and token != blank and len(tokens[token]) == 1:
            text.append(tokens[token])
        last = token
    return " ".join("".join(text).split()).lower()


def agreed_spelling(spellings: Sequence[str]) -> str | None:
    """The spelling most takes decode to: held by at least two and at least half of them, and by more than any
    other, with ``MIN_LETTERS`` letters or more; None where the takes do not agree so."""
    counts = Counter(spellings).most_common(2)
    if not counts or (len(counts) == 2 and counts[1][1] == counts[0][1]):
        return None
    text, count = counts[0]
    letters = sum(ch.isalpha() for ch in text)
    return text if count >= max(2, (len(spellings) + 1) // 2) and letters >= MIN_LETTERS else None


@dataclass(frozen=True)
class Spelling:
    """What an enrolled keyword's takes read as, and the score at which reading it fires the keyword."""

    text: str
    """The model's letters in lower case, words one space apart (``greedy_spelling``), as a typed keyword is written."""
    threshold: float
    """In (0, 1): ``stricter_than_typed`` of the one a typed keyword of ``text`` gets on the keyword's model, or higher
    where keyword-free speech reads it more often than enrollment's target rate (``kwstream.enroll.enroll.spelling_at``)."""


def stricter_than_typed(typed: float) -> float:
    """``MARGIN`` times a typed keyword's threshold ``typed``, at most 1."""
    return round(min(1.0, typed * MARGIN), 4)


def combined_score(matched: float, spelled: float, keyword_threshold: float, spelling_threshold: float) -> float:
    """The keyword's score: its takes' match, or its spelling's score shifted by the keyword's threshold less the
    spelling's (in [0, 1]; 0 where nothing is read), whichever is higher. A shift keeps what the detector does with a
    path's scores (the mean of consecutive windows, a lone window less its margin), so at the keyword's threshold it
    fires where either path alone would at its own (exactly where the keyword's threshold is at least the lone
    window's margin; under it, a reading clipped at 0 can let a pair of windows fire a little sooner). A threshold
    set above the keyword's (``--enrolled NAME:T``) moves both; above 1 less the shift only the match can reach it."""
    read = min(1.0, max(0.0, spelled - spelling_threshold + keyword_threshold)) if spelled > 0 else 0.0
    return max(matched, read)


class SpelledOr:
    """Enrolled keywords, those with a spelling also found where it is read (``combined_score``): the KeywordScorer
    ``load_scorer`` gives where a keyword has one."""

    def __init__(self, enrolled: EnrolledScorer, ctc: CtcKeywordScorer, spellings: Sequence[Spelling | None],
                 thresholds: Sequence[float]) -> None:
        """``spellings`` and ``thresholds`` (each keyword's own, as it listens: ``listening_threshold``) in the order of ``enrolled.keywords``;
        ``ctc`` scores the texts of the spellings that are not None, in that order."""
        self._enrolled, self._ctc = enrolled, ctc
        self.keywords, self.layers, self.thresholds = enrolled.keywords, enrolled.layers, enrolled.thresholds
        self.needs_voice = enrolled.needs_voice
        self._spelled = [(i, threshold, spelling.threshold)
                         for i, (spelling, threshold) in enumerate(zip(spellings, thresholds)) if spelling is not None]

    def score_frames(self, frames: EncodedFrames) -> list[KeywordMatch]:
        matches = self._enrolled.matches(frames)
        for (i, threshold, spelling_threshold), read in zip(self._spelled, self._ctc.score(frames.log_probs)):
            score = combined_score(matches[i].score, read.score, threshold, spelling_threshold)
            if score > matches[i].score:
                matches[i] = KeywordMatch(score, read.start_frame, read.end_frame)
        return closest_only(matches, self._enrolled.rivals)
