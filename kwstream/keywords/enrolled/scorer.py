"""Enrolled keywords (query by example): subsequence DTW of a window's features against examples.

An enrolled keyword is a few spoken examples, kept as wav2vec2 hidden states of one layer (see
``kwstream.keywords.enrolled.store``). No spelling is involved, so it works for any language and for
checkpoints without a CTC head. In each scoring window every example is aligned to its best
stretch of the window by subsequence dynamic time warping on cosine distance:

* frames are L2-normalised once, so the distances of all examples to the window are one matrix
  product, ``1 - example @ window.T``;
* the path may start and end anywhere in the window; each step advances the example by one frame
  and the window by one, by two (the window's speech is slower) or by none once (faster), so the
  matched stretch is 1/2 to 2 times the example's length and every example frame is paid exactly
  once: the total divided by the example's length is the mean cosine distance along the path;
* the recursion is compiled with numba (it runs for every scoring window, one step per example
  frame and window frame).

A keyword's score maps its best example's mean distance to [0, 1] (``hidden_score``), with the matched
stretch as its start and end frames; it is 0 when the window is too short for any path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kwstream.compiled import compiled
from kwstream.model.encoder import EncodedFrames, Encoder
from kwstream.model.speech_embedding import DIMENSIONS
from kwstream.keywords.base import KeywordMatch


HIDDEN, LETTERS, FUSED, VOICE = "hidden", "letters", "letters+hidden", "letters+hidden+voice"
"""What an enrolled keyword's examples are: one layer's hidden states (cosine distance); the CTC
head's per-frame letter probabilities without the blank (``letter_posteriors``; distance
``-log p.q``, the classic posteriorgram query-by-example); or both side by side (``fused_frames``;
the sum of the two distances). Letters find the word in a new speaker's voice better than hidden
states, both together rank it best (docs/enrollment.md); models without a CTC head have only hidden states.
``VOICE`` adds the speech embedding beside each frame (``EncodedFrames.voice``), matched on a path of its own: it
found the enrolling speaker's word more often (one speaker measured) and other speakers' less (``enroll --voice``)."""
VOICE_COLUMNS = DIMENSIONS
"""A ``VOICE`` example's or window's last columns: the speech embedding (unit rows)."""
MIN_SAME_LETTER = 1e-5
"""Floor of the probability that two frames hold the same letter, so one frame cannot cost infinity."""


def letter_posteriors(log_probs: np.ndarray, blank: int) -> np.ndarray:
    """(frames, letters) probabilities renormalised without the blank: the blank dominates CTC frames
    and would match any word's pauses and edges as well as its letters."""
    letters = np.exp(np.delete(np.asarray(log_probs, dtype=np.float32), blank, axis=1))
    return letters / np.maximum(letters.sum(axis=1, keepdims=True), 1e-8)


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so that a dot product is a cosine."""
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-8)


UNCENTRED_SCALE = 0.5
"""``hidden_score``'s scale for uncentred hidden states (keywords enrolled before 2026-12-06, and the takes'
agreement): ``1 - 2 * distance``, which spread version 9's similarities of real matches (0.6-0.95) over most of
[0, 1], but saturates on version 10, whose hidden states share a large common direction (keyword-free speech
scores up to 0.83, so that calibration ended at 1.0)."""
CENTRED_SCALE = 2.0
"""The largest cosine distance: at this scale ``hidden_score`` clips nothing (enrollment's first look at speech)."""


def hidden_score(distance: np.ndarray | float, scale: float) -> np.ndarray:
    """Score in [0, 1] of a mean cosine distance of hidden states: ``1 - distance / scale``, clipped.

    Centred hidden states are scaled by the mean distance at which keyword-free speech matches the keyword
    (``kwstream.enroll.enroll.SpeechMatches.hidden_scale``): it scores 0 there, and only speech closer than usual is scored and
    can fire. Centred, takes of one word and other speech lie close in cosine (jackson's sevens: 0.83 between
    takes, keyword-free speech 0.42 in the median and up to 0.68) and noisy takes lower still (Spanish: 0.2), so
    no one fixed scale suits all; and with none clipped, the normal tail that calibration fits to the whole of
    speech's long lower tail reaches past 1."""
    return np.clip(1.0 - np.asarray(distance, dtype=np.float64) / scale, 0.0, 1.0)


def letter_count(encoder: Encoder) -> int:
    """Columns of ``letter_posteriors`` for ``encoder``'s CTC head (0 without one)."""
    return len(encoder.tokens) - 1 if encoder.has_ctc_head else 0


def fused_frames(log_probs: np.ndarray, hidden: np.ndarray, blank: int) -> np.ndarray:
    """(frames, letters + hidden): the letter posteriors, then the unit hidden states (a ``FUSED`` example or window)."""
    return np.hstack([letter_posteriors(log_probs, blank), unit_rows(hidden)])


def matching_frames(frames: EncodedFrames, kind: str, layer: int, blank: int, centre: np.ndarray | None = None) -> np.ndarray:
    """What DTW compares for ``kind`` (``HIDDEN``, ``LETTERS``, ``FUSED`` or ``VOICE``), for an example or a window alike.

    ``centre``: subtracted from the hidden states before their cosines (``kwstream.enroll.enroll.feature_centre``):
    a transformer's hidden states share a large common direction, so that without it any two frames have a high
    cosine (the bundled model's version 10: takes of different digits score 0.77, of one digit 0.95) and the cosine
    hardly tells words apart. Enrollment centres ``FUSED`` and ``HIDDEN`` keywords (since 2026-12-06 for ``HIDDEN``)."""
    if kind == LETTERS:
        return letter_posteriors(frames.log_probs, blank)
    hidden = frames.features[layer] if centre is None else frames.features[layer] - centre
    if kind == VOICE:
        if frames.voice is None:
            raise ValueError("a voice keyword needs the speech embedding beside the frames (EncodedFrames.voice)")
        return np.hstack([fused_frames(frames.log_probs, hidden, blank), frames.voice])
    return hidden if kind == HIDDEN else fused_frames(frames.log_probs, hidden, blank)


@compiled
def _dtw(distances: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``subsequence_dtw`` before dividing by the lengths: total cost, in the distances' dtype.

    Rows hold two columns of padding before window frame 0, so ``row[j]`` is window frame
    ``j - 2``. Of equal candidates the first wins: one frame each, skip a window frame, two example
    frames on one window frame.

    Compiled (see ``kwstream.compiled``): it runs for every scoring window, one step
    per example frame and window frame.
    """
    examples, _, frames = distances.shape
    final_cost = np.empty_like(distances[:, 0, :])
    final_start = np.empty((examples, frames), np.int64)
    before_cost, cost, new_cost = np.empty((3, 2 + frames), distances.dtype)
    before_start, start, new_start = np.zeros((3, 2 + frames), np.int64)
    for e in range(examples):
        # a virtual row before the first: free to start anywhere, so two example frames may share the first window frame
        before_cost[:] = 0.0
        before_start[2:] = np.arange(1, frames + 1)
        cost[:2], cost[2:] = np.inf, distances[e, 0]
        start[2:] = np.arange(frames)
        for i in range(1, lengths[e]):
            new_cost[:2] = np.inf  # no path ends before the window
            for j in range(2, 2 + frames):
                best_cost, best_start = cost[j - 1], start[j - 1]  # one frame each
                if cost[j - 2] < best_cost:  # skip a window frame
                    best_cost, best_start = cost[j - 2], start[j - 2]
                two = before_cost[j - 1] + distances[e, i - 1, j - 2]  # two example frames on one window frame
                if two < best_cost:
                    best_cost, best_start = two, before_start[j - 1]
                new_cost[j] = best_cost + distances[e, i, j - 2]
                new_start[j] = best_start
            before_cost, cost, new_cost = cost, new_cost, before_cost
            before_start, start, new_start = start, new_start, before_start
        final_cost[e], final_start[e] = cost[2:], start[2:]
    return final_cost, final_start


def subsequence_dtw(distances: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best path of each example through the window.

    Args:
        distances: (examples, max_example_frames, window_frames) cosine distances; rows past an
            example's length are ignored.
        lengths: (examples,) frames of each example, at least 1.

    Returns:
        ``cost`` (examples, window_frames): mean distance of the best path ending at each window
        frame (inf where none fits), and ``start`` (same shape): the window frame it starts at.
    """
    cost, start = _dtw(np.ascontiguousarray(distances), np.asarray(lengths, dtype=np.int64))
    return cost / lengths[:, None], start


@dataclass(frozen=True)
class ExampleSet:
    """Every example of several keywords on one layer, stacked for one matrix product per window."""

    frames: np.ndarray
    """(total_frames, hidden) unit rows of all examples, one after another."""
    rows: np.ndarray
    """(examples, max_frames) index into ``frames`` of each example's frames (padded with its last)."""
    lengths: np.ndarray
    """(examples,) frames of each example."""
    owner: np.ndarray
    """(examples,) index of the keyword each example belongs to."""
    kind: str = HIDDEN
    letters: int = 0
    """``FUSED`` and ``VOICE``: how many of the columns, the first, are letter posteriors."""
    scales: np.ndarray | None = None
    """``HIDDEN``: (keywords,) ``hidden_score``'s scale of each keyword (None: ``UNCENTRED_SCALE`` for all);
    ``VOICE``: (keywords, 2) the mean cost at which keyword-free speech matches each keyword, letters + hidden
    states and voice (``voice_score``)."""

    @classmethod
    def build(cls, keyword_examples: Sequence[Sequence[np.ndarray]], kind: str = HIDDEN, letters: int = 0,
              scales: Sequence[float] | None = None) -> ExampleSet:
        prepare = unit_rows if kind == HIDDEN else (lambda e: np.asarray(e, dtype=np.float32))
        examples = [prepare(e) for group in keyword_examples for e in group]
        lengths = np.array([len(e) for e in examples])
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        steps = np.minimum(np.arange(lengths.max())[None], lengths[:, None] - 1)
        owner = np.repeat(np.arange(len(keyword_examples)), [len(g) for g in keyword_examples])
        scales = None if scales is None else np.asarray(scales, dtype=np.float64)
        return cls(np.concatenate(examples), offsets[:, None] + steps, lengths, owner, kind, letters, scales)

    def match(self, window: np.ndarray) -> list[KeywordMatch]:
        """Each keyword's best example match in ``window`` (frames, hidden)."""
        keywords = int(self.owner.max()) + 1
        if len(window) == 0:
            return [KeywordMatch(0.0, 0, 0)] * keywords
        voice_cost = None
        if self.kind == VOICE:
            cost, start, voice_cost = self._voice_paths(window)
        else:
            cost, start = subsequence_dtw(self._distances(window), self.lengths)
        end = np.argmin(cost, axis=1)
        best_cost = cost[np.arange(len(end)), end]
        matches = []
        for k in range(keywords):
            mine = np.flatnonzero(self.owner == k)
            e = mine[np.argmin(best_cost[mine])]
            if not np.isfinite(best_cost[e]):
                matches.append(KeywordMatch(0.0, 0, 0))
                continue
            score = self._score(k, float(best_cost[e]), None if voice_cost is None else float(voice_cost[mine].min()))
            matches.append(KeywordMatch(score, int(start[e, end[e]]), int(end[e]) + 1))
        return matches

    def _score(self, keyword: int, cost: float, voice_cost: float | None) -> float:
        """Keyword ``keyword``'s score for its best path's ``cost`` (and, ``VOICE``, its best voice path's)."""
        if self.kind == VOICE:  # the word's frames are the letters' path
            return voice_score(cost, voice_cost, self.scales[keyword])
        if self.kind == HIDDEN:
            return float(hidden_score(cost, UNCENTRED_SCALE if self.scales is None else self.scales[keyword]))
        return float(np.exp(-cost))  # letters: the geometric mean of p.q along the path (fused: times exp(-mean cosine distance))

    def _distances(self, window: np.ndarray, columns: slice = slice(None)) -> np.ndarray:
        """(examples, max_frames, window frames) distances of ``columns`` of a ``HIDDEN``, ``LETTERS`` or ``FUSED`` window
        (or of a ``VOICE`` window's letters and hidden states)."""
        if self.kind == HIDDEN:
            return (1.0 - self.frames @ unit_rows(window).T)[self.rows]
        frames, window = self.frames[:, columns], np.asarray(window, dtype=np.float32)[:, columns]
        n = self.letters if self.kind in (FUSED, VOICE) else frames.shape[1]
        distances = -np.log(np.maximum(frames[:, :n] @ window[:, :n].T, MIN_SAME_LETTER))
        if self.kind in (FUSED, VOICE):
            distances += 1.0 - frames[:, n:] @ window[:, n:].T
        return distances[self.rows]

    def _voice_paths(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``VOICE``: the letters + hidden states' ``subsequence_dtw`` cost and start (examples, window frames), and
        each example's best voice cost (examples,), each on its own paths."""
        window = np.asarray(window, dtype=np.float32)
        fused_cost, start = subsequence_dtw(self._distances(window, slice(0, -VOICE_COLUMNS)), self.lengths)
        voice = (1.0 - self.frames[:, -VOICE_COLUMNS:] @ window[:, -VOICE_COLUMNS:].T)[self.rows]
        return fused_cost, start, subsequence_dtw(voice, self.lengths)[0].min(axis=1)

    def costs(self, window: np.ndarray) -> np.ndarray:
        """What each keyword's score in ``window`` is made of (inf where no path fits): (keywords, 1) the best path's
        mean distance for ``HIDDEN`` (what ``hidden_score`` scales), (keywords, 2) the best letters + hidden states
        cost and the best voice cost for ``VOICE`` (what ``voice_score`` scales)."""
        keywords = int(self.owner.max()) + 1
        if self.kind not in (HIDDEN, VOICE):
            raise ValueError(f"{self.kind} keywords are not scaled: their scores are their costs' exp(-cost)")
        if len(window) == 0:
            return np.full((keywords, 1 + (self.kind == VOICE)), np.inf)
        if self.kind == HIDDEN:
            best = subsequence_dtw(self._distances(window), self.lengths)[0].min(axis=1)
            return np.array([[best[self.owner == k].min()] for k in range(keywords)])
        fused, _, voice = self._voice_paths(window)
        fused = fused.min(axis=1)
        return np.array([[fused[self.owner == k].min(), voice[self.owner == k].min()] for k in range(keywords)])


def voice_score(fused_cost: float, voice_cost: float, scales: np.ndarray) -> float:
    """A ``VOICE`` keyword's score: the mean of ``1 - cost / scale`` of its two paths (each clipped to [0, 1]), where a
    scale is the mean cost at which keyword-free speech matches the keyword: such speech scores 0 on each part, the
    takes themselves near 1. (The letters' cost and the voice's cosine distance differ in size, for the bundled speech
    against theo's "seven" about 3 and 0.12; scaled so, each counts alike.)"""
    return float(np.mean(hidden_score(np.array([fused_cost, voice_cost]), np.asarray(scales, dtype=np.float64))))


def matching_groups(kinds: Sequence[str], layers: Sequence[int], centres: Sequence[np.ndarray | None]) -> list[tuple[str, int, bytes]]:
    """Per keyword, what its windows' frames are made of (kind, layer, centre): keywords alike in it are matched together."""
    return [(kind, -1, b"") if kind == LETTERS else (kind, layer, b"" if centre is None else np.asarray(centre, np.float32).tobytes())
            for kind, layer, centre in zip(kinds, layers, centres)]


def rival_groups(matching: Sequence[tuple[str, int, bytes]]) -> list[int]:
    """Per keyword, its rival group (``closest_only``) from its ``matching_groups`` entry: keywords of one kind matched
    on the same frames. Letter and
    fused keywords score ``exp(-mean cost)``, one scale for all; voice keywords score how far below keyword-free
    speech's mean cost a match lies (``voice_score``), which ranked a speaker's own ten digits as well
    (docs/enrollment.md, *Voice keywords among rivals*). Hidden-state keywords (a model without a CTC head) were not
    measured so: each is a group of its own."""
    keys = sorted(set(matching))
    return [keys.index(key) if key[0] in (LETTERS, FUSED, VOICE) else len(keys) + i for i, key in enumerate(matching)]


class EnrolledScorer:
    """Scores enrolled keywords in each window: the KeywordScorer for examples of speech.

    Keywords may use different layers or letters; those of one kind on one layer are matched together.
    """

    def __init__(self, names: Sequence[str], layers: Sequence[int], examples: Sequence[Sequence[np.ndarray]],
                 thresholds: Sequence[float | None], kinds: Sequence[str] | None = None, blank: int = 0, letters: int = 0,
                 centres: Sequence[np.ndarray | None] | None = None, scales: Sequence[float | None] | None = None) -> None:
        """One entry per keyword: its name, layer, example features (frames, hidden, letters or both), threshold,
        kind (``HIDDEN`` by default), the centre its hidden states were taken from (``matching_frames``; None:
        not centred, as keywords enrolled before centring) and, for ``HIDDEN``, ``hidden_score``'s scale (None:
        ``UNCENTRED_SCALE``); ``blank``: the CTC blank's index, ``letters``: the
        letters without it (the CTC head's outputs less one), for letter and fused keywords."""
        self.keywords = list(names)
        kinds = list(kinds) if kinds is not None else [HIDDEN] * len(self.keywords)
        centres = list(centres) if centres is not None else [None] * len(self.keywords)
        scales = list(scales) if scales is not None else [None] * len(self.keywords)
        if any(kind == HIDDEN and centre is not None and scale is None for kind, centre, scale in zip(kinds, centres, scales)):
            raise ValueError("a centred hidden-state keyword needs its scale (uncentred keywords only score at UNCENTRED_SCALE)")
        if any(kind == VOICE and np.shape(scale) != (2,) for kind, scale in zip(kinds, scales)):
            raise ValueError("a voice keyword needs its two scales (letters + hidden states, voice)")
        self.needs_voice = VOICE in kinds
        """Whether the windows' frames must carry the speech embedding (``EncodedFrames.voice``)."""
        scales = [UNCENTRED_SCALE if scale is None else scale for scale in scales]
        group = matching_groups(kinds, layers, centres)
        self.layers = tuple(sorted({layer for _, layer, _ in group if layer >= 0}))
        self.thresholds: dict[str, float | None] = dict(zip(self.keywords, thresholds))
        self._blank = blank
        self._groups = []
        keys = sorted(set(group))
        self.rivals = rival_groups(group)
        for key in keys:
            members = [i for i, k in enumerate(group) if k == key]
            centre = None if not key[2] else np.frombuffer(key[2], np.float32)
            example_set = ExampleSet.build([examples[i] for i in members], key[0], letters, [scales[i] for i in members])
            self._groups.append((key[:2], centre, members, example_set))
        for *_, example_set in self._groups:  # compile (or load from the cache) now, not in the first window
            example_set.match(example_set.frames[:1])

    def score_frames(self, frames: EncodedFrames) -> list[KeywordMatch]:
        return closest_only(self.matches(frames), self.rivals)

    def matches(self, frames: EncodedFrames) -> list[KeywordMatch]:
        """Each keyword's best match in the window, before its rivals' (``score_frames``)."""
        matches: list[KeywordMatch | None] = [None] * len(self.keywords)
        for (kind, layer), centre, members, example_set in self._groups:
            window = matching_frames(frames, kind, layer, self._blank, centre)
            for i, match in zip(members, example_set.match(window)):
                matches[i] = match
        return matches  # type: ignore[return-value]


def closest_only(matches: Sequence[KeywordMatch], rivals: Sequence[int]) -> list[KeywordMatch]:
    """``matches`` less those of keywords that another of the same rival group (``EnrolledScorer.rivals``) matches more
    closely on overlapping frames (score 0, the alignment kept): one spoken word fires the one enrolled keyword it
    is most like. A speaker's own "six" matches their "seven"'s takes too, though less than their "six"'s; heard
    apart, every keyword fires on it at the threshold that keyword-free speech set (docs/enrollment.md, *Rival
    keywords*). It only ever removes detections, so thresholds calibrated on a keyword alone stay on the safe side (voice keywords
    among rivals listen lower: ``kwstream.keywords.enrolled.store.RIVALS_FLOOR``)."""
    def beaten(i: int, m: KeywordMatch) -> bool:
        return any(rivals[j] == rivals[i] and o.score > m.score and o.start_frame < m.end_frame and m.start_frame < o.end_frame
                   for j, o in enumerate(matches) if j != i)

    return [KeywordMatch(0.0, m.start_frame, m.end_frame) if m.score > 0 and beaten(i, m) else m for i, m in enumerate(matches)]
