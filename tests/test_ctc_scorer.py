"""CtcKeywordScorer on hand-built emission matrices with known best alignments.

Frames are written as strings: '_' is the blank (<pad>, id 0), ' ' the word delimiter ('|', id 4),
letters their character tokens. Each frame gives its token a probability P of almost 1 and spreads
the rest evenly over the other 31 tokens, so a frame costs log P (about 0) when the path takes its
token and C = log Q otherwise. The score is exp(total cost / (letters + 2 boundaries)), where a frame
after the last letter costs END_WEIGHT times the token count more. Most tests use 5-frame pauses,
so that the frame strings stay short.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from kwstream.compiled import compiled
from kwstream.errors import KeywordError
from kwstream.keywords import ctc
from kwstream.keywords.ctc import END_WEIGHT, CtcKeywordScorer, _viterbi
from kwstream.model.vocab import ENGLISH_CTC_TOKENS

TOKENS = ENGLISH_CTC_TOKENS
V = len(TOKENS)
BLANK, DELIMITER = 0, 4
P = 1 - 1e-6
Q = (1 - P) / (V - 1)
C = math.log(Q)  # cost of one frame whose best token is not the path's token
PAD = "_" * 6


def approx(expected: float):
    """Equal up to the log P the right frames cost."""
    return pytest.approx(expected, rel=1e-4, abs=1e-9)


def test_vocabulary_layout():
    assert V == 32
    assert TOKENS[BLANK] == "<pad>" and TOKENS[DELIMITER] == "|"


def token_id(ch: str) -> int:
    if ch == "_":
        return BLANK
    if ch in " |":
        return DELIMITER
    return TOKENS.index(ch.upper())


def emissions(frames: str, p: float = P) -> np.ndarray:
    log_probs = np.full((len(frames), V), math.log((1 - p) / (V - 1)))
    for t, ch in enumerate(frames):
        log_probs[t, token_id(ch)] = math.log(p)
    return log_probs


def score(keyword: str, frames: str | np.ndarray, pause_frames: int = 5, **kwargs):
    scorer = CtcKeywordScorer([keyword], TOKENS, BLANK, DELIMITER, pause_frames=pause_frames, **kwargs)
    log_probs = emissions(frames) if isinstance(frames, str) else frames
    return scorer.score(log_probs)[0]


@pytest.mark.parametrize("frames", [PAD + "S_T_O_P" + PAD, PAD + "STOP" + PAD, PAD + "SSTT_OOO_PP" + PAD])
def test_lone_keyword_scores_one_and_aligns_to_its_letters(frames):
    match = score("stop", frames)
    assert match.score == approx(1.0)
    assert match.start_frame == frames.index("S")
    assert match.end_frame == frames.rindex("P") + 1


def test_keyword_with_a_shorter_pause_than_pause_frames_needs_a_boundary_elsewhere():
    # 5 blanks are a pause with pause_frames=5; with pause_frames=7 the same audio
    # must pay for a boundary: one delimiter on a blank frame on each side, the end one in full.
    frames = "_____S_T_O_P_____"
    assert score("stop", frames).score == approx(1.0)
    assert score("stop", frames, pause_frames=7).score == approx(math.exp(C / 6 + END_WEIGHT * C))


def test_prefix_of_a_longer_word_is_not_a_match():
    frames = PAD + "S_T_O_P_P_E_D" + PAD
    stopped = score("stopped", frames)
    stop = score("stop", frames)
    assert stopped.score == approx(1.0)
    # Best "stop": its end boundary (a delimiter) must take one frame the model calls blank.
    assert stop.score == approx(math.exp(END_WEIGHT * C))
    assert stop.score < 0.5
    assert stop.score < stopped.score - 0.4


def test_a_letter_called_blank_after_the_keyword_costs_in_full_not_shared():
    # "computers" as a small model hears it: the S is likely (0.7), and a path that ends "computer"
    # must call that frame blank (0.3). Shared among ten tokens that would cost little (0.3 ** 0.1);
    # after the last letter it costs 0.3 ** END_WEIGHT, whatever the keyword's length.
    frames = PAD + "C_O_M_P_U_T_E_R_S" + " " + PAD
    log_probs = emissions(frames)
    row = np.full(V, 1e-9)
    row[token_id("S")], row[BLANK] = 0.7, 0.3
    log_probs[frames.index("S")] = np.log(row / row.sum())
    assert score("computer", log_probs).score == pytest.approx(0.3**END_WEIGHT, rel=1e-3)
    assert score("computer", log_probs, end_weight=0).score == pytest.approx(0.3**0.1, rel=1e-3)
    assert score("computers", log_probs).score == pytest.approx(0.7 ** (1 / 11), rel=1e-3)


def test_longer_word_inside_a_shorter_one_scores_low():
    frames = PAD + "S_T_O_P" + "_" * 12
    # P, blank, P, E, D: the second P, E and D each sit on a blank frame: 3 wrong of 9 tokens.
    assert score("stopped", frames).score == approx(math.exp(3 * C / 9))


def test_keyword_followed_by_a_delimiter_is_found():
    frames = PAD + "S_T_O_P_ T_H_E" + PAD
    match = score("stop", frames)
    assert match.score == approx(1.0)
    assert match.start_frame == frames.index("S")
    assert match.end_frame == frames.index("P") + 1


def test_keyword_after_a_delimiter_is_found():
    frames = PAD + "T_H_E S_T_O_P" + PAD
    match = score("stop", frames)
    assert match.score == approx(1.0)
    assert match.start_frame == frames.index("S")


def test_keyword_between_delimiters_fits_a_window_exactly():
    assert score("stop", " STOP ").score == approx(1.0)
    assert score("stop", "|S_T_O_P|").score == approx(1.0)


def test_repeated_letters_need_a_blank_between_them():
    assert score("hello", PAD + "H_E_L_L_O" + PAD).score == approx(1.0)
    assert score("hello", PAD + "HEL_LO" + PAD).score == approx(1.0)
    # One L (or two Ls merged without a blank): the second L and the O, or the blank between
    # the Ls, must take frames the model gives to something else: 2 wrong of 7 tokens.
    assert score("hello", PAD + "H_E_L_O" + PAD).score == approx(math.exp(2 * C / 7))
    assert score("hello", PAD + "H_E_LL_O" + PAD).score == approx(math.exp(2 * C / 7))
    assert score("hello", PAD + "H_E_L_O" + PAD).score < 0.3


def test_multi_word_keyword_matches_across_the_delimiter():
    frames = PAD + "H_E_Y C_O_M_P_U_T_E_R" + PAD
    match = score("hey computer", frames)
    assert match.score == approx(1.0)
    assert match.start_frame == frames.index("H")
    assert match.end_frame == frames.index("R") + 1
    assert match.start_frame < frames.index(" ") < match.end_frame
    assert score("computer", frames).score == approx(1.0)
    assert score("hey", frames).score == approx(1.0)


def test_multi_word_keyword_without_its_delimiter_pays_for_it():
    frames = PAD + "H_E_Y_C_O_M_P_U_T_E_R" + PAD
    assert score("hey computer", frames).score == approx(math.exp(C / 14))


def test_keyword_in_silence_scores_near_zero():
    silence = "_" * 40
    assert score("stop", silence).score == approx(math.exp(4 * C / 6))  # 4 letters wrong
    assert score("hey computer", silence).score == approx(math.exp(12 * C / 14))
    assert score("stop", silence).score < 0.05


def test_window_too_short_for_the_keyword_scores_zero():
    for frames in ["", "_", "___", "STOP", "_STOP", "_____"]:
        match = score("stop", frames)
        assert (match.score, match.start_frame, match.end_frame) == (0.0, 0, 0), frames
    # Six frames are just enough: boundary, four letters, boundary; here every one is wrong.
    assert score("stop", "______").score == approx(math.exp(5 * C / 6 + END_WEIGHT * C))


def test_scores_compare_across_keyword_lengths():
    short = PAD + "S_T_O_P" + PAD
    long = PAD + "C_O_M_P_U_T_E_R" + PAD
    assert score("stop", short).score == approx(1.0)
    assert score("computer", long).score == approx(1.0)
    # One wrong letter costs C spread over the keyword's tokens (letters + 2 boundaries).
    assert score("stop", PAD + "S_K_O_P" + PAD).score == approx(math.exp(C / 6))
    assert score("computer", PAD + "C_O_N_P_U_T_E_R" + PAD).score == approx(math.exp(C / 10))
    assert score("computer", PAD + "C_O_N_P_U_T_A_R" + PAD).score == approx(math.exp(2 * C / 10))


def test_cost_is_the_log_probability_of_the_paths_token():
    frames = PAD + "S_T_O_P" + PAD
    log_probs = emissions(frames)
    o = frames.index("O")
    row = np.full(V, 0.1 / (V - 2))
    row[token_id("A")], row[token_id("O")] = 0.6, 0.3
    log_probs[o] = np.log(row)
    match = score("stop", log_probs)
    assert match.score == approx(0.3 ** (1 / 6))
    assert (match.start_frame, match.end_frame) == (frames.index("S"), frames.index("P") + 1)


def test_an_unsure_reading_scores_lower_than_a_sure_one():
    # The model's favourite in every frame spells "stop" both times, but in the second it is
    # unsure of the O: the score is a confidence, not only whether the best reading matches.
    frames = PAD + "S_T_O_P" + PAD
    unsure = emissions(frames)
    row = np.full(V, 0.6 / (V - 1))
    row[token_id("O")] = 0.4
    unsure[frames.index("O")] = np.log(row)
    assert score("stop", frames).score == approx(1.0)
    assert score("stop", unsure).score == approx(0.4 ** (1 / 6))


def test_default_pause_is_eight_blank_frames():
    scorer = CtcKeywordScorer(["stop"], TOKENS, BLANK, DELIMITER)
    assert scorer.score(emissions("_" * 8 + "S_T_O_P" + "_" * 8))[0].score == approx(1.0)
    assert scorer.score(emissions("_" * 7 + "S_T_O_P" + "_" * 7))[0].score == approx(math.exp(C / 6 + END_WEIGHT * C))


def test_scoring_several_keywords_equals_scoring_each_alone():
    keywords = ["stop", "hello", "stopped", "hey computer", "computer", "go"]
    frames = PAD + "S_T_O_P_ H_E_L_O C_O_M_P_U_T_E_R" + "_" * 12
    log_probs = emissions(frames)
    together = CtcKeywordScorer(keywords, TOKENS, BLANK, DELIMITER, pause_frames=5).score(log_probs)
    alone = [CtcKeywordScorer([k], TOKENS, BLANK, DELIMITER, pause_frames=5).score(log_probs)[0] for k in keywords]
    assert together == alone
    assert together[0].score == approx(1.0)
    assert together[4].score == approx(1.0)


@pytest.mark.parametrize("spelling", ["STOP", "Stop", "sToP", "  stop  "])
def test_case_and_outer_space_do_not_matter(spelling):
    frames = PAD + "S_T_O_P_ H_E_Y" + PAD
    assert score(spelling, frames) == score("stop", frames)


def test_inner_white_space_collapses():
    frames = PAD + "H_E_Y C_O_M_P_U_T_E_R" + PAD
    assert score("hey \t  COMPUTER", frames) == score("hey computer", frames)


def test_apostrophe_is_spellable():
    assert score("don't", PAD + "D_O_N_'_T" + PAD).score == approx(1.0)


def test_unspellable_characters_raise_naming_them():
    with pytest.raises(KeywordError) as err:
        CtcKeywordScorer(["café"], TOKENS, BLANK, DELIMITER)
    assert "é" in str(err.value).lower()
    with pytest.raises(KeywordError) as err:
        CtcKeywordScorer(["stop", "x2"], TOKENS, BLANK, DELIMITER)
    assert "'2'" in str(err.value)
    assert "x2" in str(err.value)


def test_delimiter_character_in_a_keyword_is_not_spellable():
    with pytest.raises(KeywordError):
        CtcKeywordScorer(["hey|you"], TOKENS, BLANK, DELIMITER)


@pytest.mark.parametrize("keyword", ["", "   ", "\t\n"])
def test_empty_keyword_raises(keyword):
    with pytest.raises(KeywordError):
        CtcKeywordScorer([keyword], TOKENS, BLANK, DELIMITER)


def test_no_keywords_raises():
    with pytest.raises(KeywordError):
        CtcKeywordScorer([], TOKENS, BLANK, DELIMITER)


def test_without_a_delimiter_single_words_use_pauses_and_phrases_raise():
    scorer = CtcKeywordScorer(["stop"], TOKENS, BLANK, None, pause_frames=5)
    assert scorer.score(emissions(PAD + "S_T_O_P" + PAD))[0].score == approx(1.0)
    with pytest.raises(KeywordError):
        CtcKeywordScorer(["hey computer"], TOKENS, BLANK, None)


def reference_viterbi(scorer: CtcKeywordScorer, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pass as numpy, one frame at a time (as it was before it was compiled): per end state, the
    best total cost in any frame and that path's start and end frames."""
    preds, first, last, ends = scorer._preds, scorer._first, scorer._last, scorer._ends
    n = len(preds)
    value, start, end = np.full(n + 2, -np.inf), np.full(n + 2, -1), np.full(n + 2, -1)
    value[n] = 0.0
    best, best_start, best_end = np.full(len(ends), -np.inf), np.zeros(len(ends), int), np.zeros(len(ends), int)
    for t in range(len(cost)):
        chosen = preds[np.arange(n), value[preds].argmax(axis=1)]  # the first best predecessor
        new_start = start[chosen]
        entered = chosen[first] != preds[first, 0]  # from anywhere but its own loop
        new_start[first[entered]] = t
        new_end = end[chosen]
        new_end[last] = t + 1
        value[:n], start[:n], end[:n] = value[chosen] + cost[t], new_start, new_end
        improved = value[ends] > best
        best[improved], best_start[improved], best_end[improved] = (x[ends][improved] for x in (value, start, end))
    return best, best_start, best_end


@pytest.mark.parametrize("keywords, delimiter", [
    (["zero", "three", "seven", "nine"], DELIMITER),
    (["hello", "hey computer", "stop", "a", "all"], DELIMITER),
    (["hello", "stop", "a"], None),
])
def test_compiled_pass_equals_the_numpy_reference(keywords, delimiter):
    rng = np.random.default_rng(7)
    for trial in range(60):
        scorer = CtcKeywordScorer(keywords, TOKENS, BLANK, delimiter, pause_frames=int(rng.integers(1, 7)))
        frames = int(rng.integers(0, 80))
        if trial % 3 == 0:  # few distinct values: many equal candidates, where the first must win
            logits = rng.integers(0, 3, size=(frames, V)).astype(np.float32)
        else:
            logits = rng.standard_normal((frames, V)) * (1 + trial % 4)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        cost = log_probs[:, scorer._tokens].astype(np.float64)
        got = _viterbi(cost, scorer._preds, scorer._first, scorer._last, scorer._ends)
        want = reference_viterbi(scorer, cost)
        for g, w in zip(got, want):  # scores, starts and ends of every end state, exactly
            np.testing.assert_array_equal(g, w)


def test_the_pass_is_compiled_when_the_scorer_is_built_not_in_the_first_window(monkeypatch):
    """A fresh dispatcher of the same pass (real numba; earlier tests compiled the module's own):
    building the scorer compiles it (or loads numba's cache), and scoring windows never compiles again."""
    if numba.config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT is set")
    fresh = compiled(_viterbi.py_func)
    monkeypatch.setattr(ctc, "_viterbi", fresh)
    assert fresh.signatures == []
    scorer = CtcKeywordScorer(["stop"], TOKENS, BLANK, DELIMITER)
    built = list(fresh.signatures)
    assert len(built) == 1
    for frames in (1, 37):  # a window's log-probabilities as the encoder gives them: float32
        scorer.score(np.log(np.full((frames, len(TOKENS)), 1 / len(TOKENS), np.float32)))
    assert fresh.signatures == built


def test_a_keyword_scores_its_rare_homophones_spelling_as_its_own():
    """A model that hears "hey" and writes HAY (version 10 does) still finds "hey"; "to" for "two" does not count."""
    hay = PAD + "HAY" + PAD
    assert score("hey", hay).score == approx(score("hay", hay).score) == approx(1.0)
    assert score("hey", hay).start_frame == hay.index("H") and score("hey", hay).end_frame == hay.index("Y") + 1
    assert score("hey", PAD + "HEY" + PAD).score == approx(1.0)
    assert score("two", PAD + "TO" + PAD).score < 0.05
    assert score("hey", PAD + "HOY" + PAD).score < 0.05
