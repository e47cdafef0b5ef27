"""Zero-shot scoring of typed keywords through a wav2vec2 CTC head.

For each spelling of each keyword (its own and its rare homophones', ``homophones.spellings``) we build a
small left-to-right graph and find, with one Viterbi pass over the
window's frames, the best path through it that starts and ends anywhere in the window:

    boundary -> the keyword's tokens under CTC rules (blanks between, repeats held) -> boundary

A boundary is either the word delimiter ``|`` or a run of blank frames long enough to be a pause,
so "stop" matches "stop the music" and a lone "stop", but not the head of "stopped" (between P
and E there is neither a delimiter nor a pause). A frame costs the log-probability of the path's
token in it; the path's total is divided by the number of tokens (boundaries counted) and
exponentiated, giving a score in [0, 1] that compares across keywords of different lengths: the
geometric mean, per token, of the alignment's posterior. It is an absolute confidence: a window
whose best reading spells the keyword, but only just, scores lower than one the model is sure of.
(Costs relative to each frame's best token, tried first, score every such reading 1.0 and leave no
threshold between a clear keyword and a guess: on the development streams, recall at 1 false alarm
per hour went from 0.12 to 0.35 with absolute costs.) All keywords share one pass.

The frames between a keyword's last letter and its end boundary are charged more than their share:
their cost is multiplied by ``end_weight`` times the keyword's token count before the division, so
a letter the path has to call blank there lowers the score by its posterior to the power
``end_weight``, however long the keyword. That is the keyword inside a longer word ("computer" in
"computers", the S called blank before the boundary), the largest source of false alarms; shared
among ten tokens the S cost "computer" little. On the development streams
(model version 5; mean over 14 keywords of the best recall at up to 1 and 0.5 false alarms per hour)
shared costs gave 0.42 / 0.33, ``end_weight`` 0.5 gave 0.45 / 0.36, 1 gave 0.45 / 0.37 and 2 gave
0.43 / 0.35, with recall at 20 per hour 0.78, 0.78, 0.77, 0.72; charging the start the same way too
did not help (0.43 / 0.34).

The pass itself (``_viterbi``) is compiled with numba: it runs for every scoring window, and a
Python loop over frames would cost more than the arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from kwstream.compiled import compiled
from kwstream.model.encoder import EncodedFrames
from kwstream.errors import KeywordError
from kwstream.keywords.base import KeywordMatch
from kwstream.keywords.homophones import spellings

MAX_PREDECESSORS = 4
END_WEIGHT = 0.5
"""How much more than its share a frame after the keyword's last letter costs (module docstring)."""


def normalize_keyword(text: str) -> str:
    """Collapse white space; keywords compare case-insensitively."""
    return re.sub(r"\s+", " ", text.strip())


def spell(text: str, tokens: Sequence[str], delimiter_id: int | None) -> list[int]:
    """Token ids of ``text`` in the model's vocabulary, words joined by the delimiter."""
    words = normalize_keyword(text).split(" ")
    if words == [""]:
        raise KeywordError("empty keyword")
    if len(words) > 1 and delimiter_id is None:
        raise KeywordError(f"keyword {text!r} has several words but the model has no word delimiter")
    index = {token: i for i, token in enumerate(tokens) if len(token) == 1}
    letters = [t for t in index if t.isalpha()]
    upper = sum(t.isupper() for t in letters) >= sum(t.islower() for t in letters)
    ids: list[int] = []
    unknown: list[str] = []
    for w, word in enumerate(words):
        if w:
            ids.append(delimiter_id)
        for ch in word.upper() if upper else word.lower():
            if ch in index and index[ch] != delimiter_id:
                ids.append(index[ch])
            elif ch not in unknown:
                unknown.append(ch)
    if unknown:
        spellable = sorted(t for t in index if index[t] != delimiter_id and len(t) == 1 and t.isprintable())
        letters = "".join(t for t in spellable if t.isalpha())
        others = " ".join(repr(t) for t in spellable if not t.isalpha())
        raise KeywordError(
            f"keyword {text!r} has characters the model cannot spell: {' '.join(map(repr, unknown))} "
            f"(it spells with the letters {letters}{' and ' + others if others else ''})"
        )
    return ids


def _token_spellings(keyword: str, tokens: Sequence[str], delimiter_id: int | None) -> list[list[int]]:
    """Token ids of ``keyword`` (a KeywordError if it cannot be spelled), then of each of its
    homophone spellings that the vocabulary can spell."""
    own, *others = spellings(keyword)
    spelled = [spell(own, tokens, delimiter_id)]
    for text in others:
        try:
            spelled.append(spell(text, tokens, delimiter_id))
        except KeywordError:  # a homophone with a character the model lacks ("'")
            continue
    return spelled


class _Graph:
    """The states of every keyword's graph, concatenated, with fixed-width predecessor lists."""

    def __init__(self, start_pred: int, never: int) -> None:
        self.tokens: list[int] = []
        self.preds: list[list[int]] = []
        self.keyword: list[int] = []
        self.start_pred = start_pred  # index whose value is always 0: "the path may begin here"
        self.never = never  # index whose value is always -inf: padding

    def add(self, token: int, preds: list[int], keyword: int, loop: bool) -> int:
        index = len(self.tokens)
        preds = ([index] if loop else []) + preds
        self.tokens.append(token)
        self.preds.append(preds + [self.never] * (MAX_PREDECESSORS - len(preds)))
        self.keyword.append(keyword)
        return index


@compiled
def _viterbi(cost: np.ndarray, preds: np.ndarray, first: np.ndarray, last: np.ndarray,
             ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best path through the graph that ends in each end state, over frames ``cost`` (T, states).

    Each frame every state takes its best predecessor (the first of equals) from the previous
    frame's values, ``preds`` (states, MAX_PREDECESSORS) holding its own index first if it loops
    and the sentinels ``states`` (always 0: start here) and ``states + 1`` (-inf: padding). A
    path's start is the frame it entered a keyword's first state (``first``) from elsewhere, its
    end the frame after it last stood in a last state (``last``). Returns, per end state, the best
    total cost seen in any frame (-inf if none) and that path's start and end frames.

    Compiled (see ``kwstream.compiled``): it runs for every scoring window, one step per frame.
    """
    frames, states = cost.shape
    is_first = np.zeros(states, np.bool_)
    is_first[first] = True
    is_last = np.zeros(states, np.bool_)
    is_last[last] = True
    value = np.full(states + 2, -np.inf)
    value[states] = 0.0
    start = np.full(states + 2, -1, np.int64)
    end = np.full(states + 2, -1, np.int64)
    new_value = np.empty(states)
    new_start = np.empty(states, np.int64)
    new_end = np.empty(states, np.int64)
    best = np.full(len(ends), -np.inf)
    best_start = np.zeros(len(ends), np.int64)
    best_end = np.zeros(len(ends), np.int64)
    for t in range(frames):
        for s in range(states):
            chosen = preds[s, 0]
            for p in preds[s, 1:]:
                if value[p] > value[chosen]:
                    chosen = p
            new_value[s] = value[chosen] + cost[t, s]
            new_start[s] = t if is_first[s] and chosen != preds[s, 0] else start[chosen]
            new_end[s] = t + 1 if is_last[s] else end[chosen]
        value[:states], start[:states], end[:states] = new_value, new_start, new_end
        for k, s in enumerate(ends):
            if value[s] > best[k]:
                best[k], best_start[k], best_end[k] = value[s], start[s], end[s]
    return best, best_start, best_end


class CtcKeywordScorer:
    """Scores many keywords against one window of CTC log-probabilities."""

    def __init__(
        self,
        keywords: Sequence[str],
        tokens: Sequence[str],
        blank_id: int,
        delimiter_id: int | None,
        pause_frames: int = 8,
        end_weight: float = END_WEIGHT,
    ) -> None:
        """
        Args:
            keywords: keyword texts; multi-word keywords are one token sequence. Each is matched in
                its own spelling and its rare homophones' (``homophones.spellings``), scoring the best.
            tokens: the model's vocabulary, index = token id.
            blank_id: the CTC blank (wav2vec2: the pad token).
            delimiter_id: the word delimiter ``|``, or None if the model has none.
            pause_frames: blank frames that count as a word boundary (8 frames = 160 ms at 20 ms).
            end_weight: a frame between the last letter and the end boundary costs this many times
                the keyword's token count; 0 charges it only its share, like every other frame.
        """
        if not keywords:
            raise KeywordError("no keywords given")
        self.keywords = list(keywords)
        spelled = [(k, labels) for k, keyword in enumerate(keywords) for labels in _token_spellings(keyword, tokens, delimiter_id)]
        # Sentinels live just past the real states; their indices are fixed after building.
        size = sum(4 + 2 * pause_frames + 2 * len(s) for _, s in spelled)
        g = _Graph(start_pred=size, never=size + 1)
        first_states, last_states, end_states, end_tokens, end_spans = [], [], [], [], []
        for k, labels in spelled:
            count = len(labels) + 2  # the tokens a path's total is shared among: boundaries counted
            entries = []
            if delimiter_id is not None:
                entries.append(g.add(delimiter_id, [g.start_pred], k, loop=True))
            pause = g.add(blank_id, [g.start_pred], k, loop=False)
            for _ in range(pause_frames - 1):
                pause = g.add(blank_id, [pause], k, loop=False)
            entries.append(pause)
            blank = g.add(blank_id, entries, k, loop=True)
            label = None
            for i, token in enumerate(labels):
                preds = [blank]
                if i == 0:
                    preds += entries
                elif token != labels[i - 1]:
                    preds.append(label)
                label = g.add(token, preds, k, loop=True)
                if i == 0:
                    first_states.append(label)
                blank = g.add(blank_id, [label], k, loop=True)
            last_states.append(label)
            if delimiter_id is not None:
                end_states.append(g.add(delimiter_id, [label, blank], k, loop=True))
                end_tokens.append(count)
            pause = g.add(blank_id, [label], k, loop=False)
            for _ in range(pause_frames - 1):
                pause = g.add(blank_id, [pause], k, loop=False)
            end_states.append(pause)
            end_tokens.append(count)
            end_spans.append((blank, len(g.tokens), count))  # the blank after the last letter, the end boundary
        n = len(g.tokens)
        assert n <= size
        remap = np.arange(size + 2)
        remap[size], remap[size + 1] = n, n + 1  # move sentinels right after the real states
        self._tokens = np.array(g.tokens)
        self._preds = remap[np.array(g.preds)].astype(np.int64)
        self._first = np.array(first_states, dtype=np.int64)
        self._last = np.array(last_states, dtype=np.int64)
        self._ends = np.array(end_states, dtype=np.int64)
        self._end_keyword = np.array([g.keyword[s] for s in end_states])
        self._end_tokens = np.array(end_tokens, dtype=np.float64)
        self._weight = np.ones(n)
        for begin, stop, count in end_spans:
            self._weight[begin:stop] = max(1.0, end_weight * count)
        self.layers: tuple[int, ...] = ()
        self.thresholds: dict[str, float | None] = dict.fromkeys(self.keywords)
        self.score(np.zeros((1, len(tokens))))  # compile (or load from the cache) now, not in the first window

    def score_frames(self, frames: EncodedFrames) -> list[KeywordMatch]:
        return self.score(frames.log_probs)

    def score(self, log_probs: np.ndarray) -> list[KeywordMatch]:
        """Best match of each keyword in a window of (frames, vocab) log-probabilities."""
        cost = log_probs[:, self._tokens] * self._weight  # (T, n), <= 0
        best, best_start, best_end = _viterbi(
            np.ascontiguousarray(cost, dtype=np.float64), self._preds, self._first, self._last, self._ends)
        matches = []
        scores = np.exp(best / self._end_tokens)  # per end state: its spelling's per-token score (0 if none)
        for k in range(len(self.keywords)):
            mine = np.flatnonzero(self._end_keyword == k)
            j = mine[np.argmax(scores[mine])]
            if np.isfinite(best[j]):
                matches.append(KeywordMatch(float(scores[j]), int(best_start[j]), int(best_end[j])))
            else:
                matches.append(KeywordMatch(0.0, 0, 0))
        return matches
