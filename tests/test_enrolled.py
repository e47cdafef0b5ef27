"""Enrolled keywords: the DTW matcher against a brute-force reference, the store, enrollment's
refusals, and spotting an enrolled digit in real speech with the bundled model (also headless)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from statistics import NormalDist

import numba
import numpy as np
import pytest

from conftest import REPO, SAMPLE_RATE
from kwstream.audio.sources import AudioFile
from kwstream.model.encoder import EncodedFrames, Encoder, EncoderSettings
from kwstream.keywords.base import KeywordMatch
from kwstream.enroll.enroll import FLOOR_FRACTIONS, EnrollSettings, check_examples, enroll, odd_take, pipeline_scores, prepare
from kwstream.enroll.calibration import calibrate_threshold, false_alarms_per_hour, threshold_for_rate
from kwstream.keywords.enrolled.scorer import (CENTRED_SCALE, FUSED, HIDDEN, LETTERS, UNCENTRED_SCALE, VOICE, hidden_score, letter_posteriors,
                                               matching_frames, voice_score, closest_only, EnrolledScorer, ExampleSet, _dtw, letter_count, subsequence_dtw,
                                               unit_rows)
from kwstream.keywords.enrolled.store import EnrolledKeyword, EnrollmentError, KeywordStore, check_model, load_scorer
from kwstream.spotter import Spotter, SpotterSettings
from kwstream.audio.io import read_audio
from training.digit_streams import DEFAULT_FSDD_DIR

BUNDLED = REPO / "kwstream" / "assets" / "model"
RECORDINGS = DEFAULT_FSDD_DIR / "recordings"
needs_fsdd = pytest.mark.skipif(not RECORDINGS.is_dir(), reason="needs ../shared/data/fsdd")


def reference_dtw(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same recursion, one cell at a time: steps (1,1), (1,2) and two example frames on one window frame."""
    m, n = distances.shape

    @functools.lru_cache(None)
    def best(i: int, j: int) -> tuple[float, int]:
        if i < 0 or j < 0:
            return np.inf, -1
        if i == 0:
            return distances[0, j], j
        two = (distances[0, j], j) if i == 1 else (best(i - 2, j - 1)[0] + distances[i - 1, j], best(i - 2, j - 1)[1])
        cost, start = min([best(i - 1, j - 1), best(i - 1, j - 2), two], key=lambda t: t[0])
        return cost + distances[i, j], start

    results = [best(m - 1, j) for j in range(n)]
    return np.array([c for c, _ in results]) / m, np.array([s for _, s in results])


def test_dtw_matches_the_cell_by_cell_recursion():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(1, 9, size=3)
        distances = rng.random((3, lengths.max(), int(rng.integers(1, 16))))
        cost, start = subsequence_dtw(distances, lengths)
        for e in range(3):
            want_cost, want_start = reference_dtw(distances[e, :lengths[e]])
            np.testing.assert_allclose(cost[e], want_cost)
            fits = np.isfinite(want_cost)
            assert np.array_equal(start[e][fits], want_start[fits])


def test_dtw_in_float32_as_scoring_runs_it_matches_the_recursion_with_ties_going_to_the_first_step():
    rng = np.random.default_rng(3)
    for trial in range(50):
        lengths = rng.integers(1, 30, size=4)
        distances = rng.random((4, lengths.max(), int(rng.integers(1, 80)))).astype(np.float32)
        if trial % 2:
            distances = np.round(distances * 4) / 4  # few distinct values: many equal paths
        cost, start = subsequence_dtw(distances, lengths)
        for e in range(4):
            want_cost, want_start = reference_dtw(distances[e, :lengths[e]])
            np.testing.assert_allclose(cost[e], want_cost, rtol=1e-6)
            fits = np.isfinite(want_cost)
            assert np.array_equal(start[e][fits], want_start[fits])


def test_the_dtw_is_compiled_when_the_scorer_is_built():
    if numba.config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT is set")
    EnrolledScorer(["a"], [3], [[np.ones((4, 8), np.float32)] * 2], [None])
    assert _dtw.signatures  # compiled (or loaded from numba's cache), not interpreted


def test_a_stretched_copy_is_found_where_it_lies_and_a_short_window_scores_zero():
    rng = np.random.default_rng(1)
    example = rng.standard_normal((20, 16))
    stretched = np.repeat(example, 3, axis=0)[::2]  # 1.5 times slower: 30 frames
    window = np.concatenate([rng.standard_normal((12, 16)), stretched, rng.standard_normal((9, 16))])
    example_set = ExampleSet.build([[example], [rng.standard_normal((20, 16))]])
    found, other = example_set.match(window)
    assert found.score > 0.99 and found.start_frame in (12, 13) and found.end_frame == 42  # its first frame is there twice
    assert other.score < 0.3
    assert example_set.match(window[:9])[0].score == 0.0  # under half the example's length: no path fits
    assert example_set.match(window[:0])[0].score == 0.0


def test_letter_posteriors_find_a_template_inside_a_longer_sequence_at_the_right_frames():
    rng = np.random.default_rng(4)
    letters = lambda n: rng.dirichlet(np.full(30, 0.05), size=n).astype(np.float32)  # peaky, as CTC frames are
    template = letters(12)
    slower = np.repeat(template, 3, axis=0)[::2]  # 1.5 times slower: 18 frames
    window = np.concatenate([letters(20), slower * 0.9 + 0.1 / 30, letters(15)])
    [match] = ExampleSet.build([[template]], LETTERS).match(window)
    [elsewhere] = ExampleSet.build([[letters(12)]], LETTERS).match(window)
    assert match.start_frame in (20, 21) and match.end_frame == 38, match  # its first frame is there twice
    # a perfect match scores the geometric mean of its frames' own p.p (under 1 unless one-hot); another word far less
    assert match.score > 5 * elsewhere.score, (match, elsewhere)
    log_probs = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32))
    np.testing.assert_allclose(letter_posteriors(log_probs, blank=0), [[2 / 3, 1 / 3], [1 / 9, 8 / 9]], rtol=1e-5)


def test_fused_examples_let_the_hidden_states_decide_between_two_stretches_of_the_same_letters():
    """Both stretches spell the template's letters; only the second sounds like it (its hidden states)."""
    rng = np.random.default_rng(5)
    letters = rng.dirichlet(np.full(30, 0.05), size=10).astype(np.float32)
    hidden = rng.standard_normal((10, 16)).astype(np.float32)
    fuse = lambda ls, hs: np.hstack([ls, unit_rows(hs)])  # noqa: E731  (fused_frames' layout, from posteriors already made)
    noise = lambda n: fuse(rng.dirichlet(np.full(30, 0.05), size=n).astype(np.float32), rng.standard_normal((n, 16)))  # noqa: E731
    window = np.concatenate([noise(8), fuse(letters, -hidden), noise(6), fuse(letters, hidden), noise(5)])
    [match] = ExampleSet.build([[fuse(letters, hidden)]], FUSED, letters=30).match(window)
    assert (match.start_frame, match.end_frame) == (24, 34), match
    [letters_only] = ExampleSet.build([[letters]], LETTERS).match(window[:, :30])
    assert letters_only.start_frame == 8, letters_only  # letters alone: the first of two equal matches wins
    assert match.score == pytest.approx(letters_only.score, rel=1e-4)  # cosine distance 0 on the right stretch: exp(-0) = 1


def test_voice_keywords_score_the_voice_on_its_own_path_beside_the_letters():
    """The same word (letters, hidden states) in the template's voice and in another; each part finds its own best path."""
    rng = np.random.default_rng(8)
    letters = np.eye(30, dtype=np.float32)[rng.integers(0, 30, 10)]  # one-hot: a frame matches itself at cost 0
    hidden, voice = unit_rows(rng.standard_normal((10, 16))), unit_rows(rng.standard_normal((10, 96)))
    other_voice = unit_rows(rng.standard_normal((10, 96)))
    frames = lambda v: np.hstack([letters, hidden, v])  # noqa: E731  (matching_frames' VOICE layout)
    template = ExampleSet.build([[frames(voice)]], VOICE, letters=30, scales=[(1.0, 0.5)])
    [same] = template.match(frames(voice))
    [other] = template.match(frames(other_voice))
    assert same.score == pytest.approx(1.0) and (same.start_frame, same.end_frame) == (0, 10)
    costs = template.costs(frames(other_voice))[0]
    assert costs[0] == pytest.approx(0.0, abs=1e-5) and costs[1] > 0.5  # the same letters, another voice
    assert other.score == pytest.approx(voice_score(costs[0], costs[1], np.array([1.0, 0.5]))) == pytest.approx(0.5, abs=1e-5)
    assert voice_score(1.5, 0.25, np.array([3.0, 0.5])) == pytest.approx(0.5)  # the mean of 1 - cost / scale, each part
    noise = lambda n: np.hstack([np.eye(30, dtype=np.float32)[rng.integers(0, 30, n)], unit_rows(rng.standard_normal((n, 16))),  # noqa: E731
                                 unit_rows(rng.standard_normal((n, 96)))])
    apart = np.concatenate([frames(other_voice), noise(5), np.hstack([noise(10)[:, :46], voice])])  # the voice 15 frames later
    two = ExampleSet.build([[frames(voice)], [frames(voice)]], VOICE, letters=30, scales=[(1.0, 0.5), (1.0, 2.0)])
    found = two.match(apart)
    assert [(m.start_frame, m.end_frame) for m in found] == [(0, 10)] * 2  # where the letters are
    assert found[0].score == pytest.approx(1.0, abs=1e-4) == found[1].score  # the voice found on its own path, 15 frames on
    assert two.match(frames(other_voice))[1].score > two.match(frames(other_voice))[0].score  # each keyword its own scales
    assert two.costs(apart[:0]).tolist() == [[np.inf, np.inf]] * 2  # an empty window
    parts = [EncodedFrames(np.zeros((n, 31), np.float32), {3: hidden[:n]}, voice=voice[:n]) for n in (4, 6)]
    np.testing.assert_array_equal(EncodedFrames.concat(parts).voice, np.concatenate([voice[:4], voice[:6]]))  # joined frames keep it
    with pytest.raises(ValueError, match="two scales"):
        EnrolledScorer(["a"], [3], [[frames(voice)]], [None], [VOICE], letters=30, centres=[np.zeros(16, np.float32)])
    window = EncodedFrames(np.zeros((10, 31), np.float32), {3: hidden})
    with pytest.raises(ValueError, match="speech embedding"):
        matching_frames(window, VOICE, 3, 0)


def test_unit_rows_survive_silence():
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0]])


def test_calibration_on_a_known_score_distribution_gives_the_threshold_for_the_target_rate():
    rng = np.random.default_rng(0)
    scores = np.clip(rng.normal(0.3, 0.1, 200_000), 1e-3, 1)  # 200,000 possible firings in 10 hours
    # 0.5 an hour of 20,000 an hour: the normal's upper 1/40,000 quantile, 0.3 + 0.1 * 4.056
    assert threshold_for_rate(scores, 10.0, 0.5) == pytest.approx(0.706, abs=0.01)
    assert false_alarms_per_hour(scores, 10.0, 0.706) == pytest.approx(0.5, abs=0.25)
    # over few minutes the count cannot show 0.5/h: the fitted tail extrapolates above every score seen
    few = scores[:1000]
    assert threshold_for_rate(few, 0.05, 0.5) > few.max()
    # a longer tail than the normal's (real speech): the fit alone would sit below scores the negatives reach
    long_tail = np.concatenate([few, [0.95, 0.9, 0.85]])
    assert NormalDist(long_tail.mean(), long_tail.std()).inv_cdf(1 - 0.5 * 0.05 / len(long_tail)) < 0.85
    assert threshold_for_rate(long_tail, 0.05, 0.5) > 0.95  # 0.5/h over 3 minutes: not one of them may fire
    assert threshold_for_rate(long_tail, 4.0, 0.5) == pytest.approx(0.85, abs=1e-5)  # over 4 hours two may: just above the third
    # where the negatives are long enough to count, the threshold lets through exactly the allowed firings
    assert (scores >= threshold_for_rate(scores, 10.0, 1000.0)).sum() == 10_000


def test_the_takes_set_a_floor_not_the_threshold():
    quiet = calibrate_threshold([0.8, 0.9, 0.85], np.full(100, 0.01), 0.05)  # negatives that never score
    assert quiet.threshold == pytest.approx(0.72) and "floor" in quiet.method
    loud = calibrate_threshold([0.8, 0.9, 0.85], np.random.default_rng(1).normal(0.62, 0.05, 1000), 0.05)
    assert 0.8 < loud.threshold < 0.85 and "false alarms/h" in loud.method
    assert loud.expected_recall == pytest.approx(2 / 3) and loud.expected_fa_per_hour <= 0.5
    # what the negatives alone allow is kept, for a voice keyword that listens beside rivals at a lower floor
    assert quiet.as_dict()["from_negatives"] < quiet.threshold and loud.from_negatives == pytest.approx(loud.threshold, abs=1e-4)


def test_takes_that_do_not_resemble_each_other_are_refused():
    with pytest.raises(EnrollmentError, match="do not resemble each other"):
        calibrate_threshold([0.7, 0.02, 0.8], np.full(10, 0.1), 0.05)


def test_the_odd_take_is_the_one_far_below_how_the_others_match_each_other():
    pairs = np.array([[1.0, 0.8, 0.29], [0.8, 1.0, 0.31], [0.29, 0.31, 1.0]])
    assert odd_take(pairs).take == 2  # 0.3 against them (above the floor), 0.8 between them: more than AGREEMENT_GAP apart
    assert odd_take(np.array([[1.0, 0.8, 0.7], [0.8, 1.0, 0.75], [0.7, 0.75, 1.0]])) is None
    assert odd_take(np.array([[1.0, 0.1], [0.1, 1.0]])) is not None  # two takes: only the floor can tell
    assert odd_take(np.array([[1.0, 0.3], [0.3, 1.0]])) is not None  # ...a stricter one than three takes need
    assert odd_take(np.array([[1.0, 0.5], [0.5, 1.0]])) is None


@needs_fsdd
def test_takes_of_different_words_are_refused_naming_the_odd_one(bundled):
    """Issue 32: a seven, a three and a nine were stored as one keyword that then fired on every word."""
    def takes(*names):
        return [(read_audio(RECORDINGS / f"{n}.wav"), f"{n}.wav") for n in names]

    with pytest.raises(EnrollmentError, match=r"take [379]_jackson_0.wav does not match the others"):  # each is odd
        enroll("lumos", takes("7_jackson_0", "3_jackson_0", "9_jackson_0"), bundled, SpotterSettings())
    with pytest.raises(EnrollmentError, match=r"take 3_jackson_0.wav does not match the others"):
        enroll("seven", takes("7_jackson_0", "7_jackson_1", "3_jackson_0"), bundled, SpotterSettings())
    with pytest.raises(EnrollmentError, match=r"the takes 7_jackson_1.wav and 0_jackson_2.wav do not match each other"):
        enroll("w16", takes("7_jackson_1", "0_jackson_2"), bundled, SpotterSettings())  # enrolled, expected recall 0.00


def _keyword(name: str = "hello", fingerprint: str = "abc") -> EnrolledKeyword:
    rng = np.random.default_rng(2)
    examples = [rng.standard_normal((n, 8)).astype(np.float32) for n in (30, 34, 28)]
    return EnrolledKeyword(name, 3, 0.42, fingerprint, "some/model", examples, ["a.wav", "b.wav", "c.wav"], {"method": "test"})


def test_a_fused_keywords_centre_round_trips_and_older_keywords_have_none(tmp_path):
    store = KeywordStore(tmp_path)
    centre = np.linspace(-1, 1, 8, dtype=np.float32)
    store.save(dataclasses.replace(_keyword("centred"), kind=FUSED, centre=centre))
    np.testing.assert_array_equal(store.load("centred").centre, centre)
    store.save(_keyword("plain"))  # as keywords enrolled before centring were stored
    assert store.load("plain").centre is None
    store.save(dataclasses.replace(_keyword("hidden"), centre=centre, scale=0.9))
    assert (store.load("hidden").scale, store.load("plain").scale) == (0.9, None)
    formats = {name: json.loads((tmp_path / name / "keyword.json").read_text())["format"] for name in ("plain", "centred", "hidden")}
    # older code refuses the centred ones: it would score them uncentred, or at the uncentred scale
    assert formats == {"plain": "kwstream-enrolled-1", "centred": "kwstream-enrolled-2", "hidden": "kwstream-enrolled-3"}
    metadata = json.loads((tmp_path / "hidden" / "keyword.json").read_text())
    for bad, shown in ((None, "None"), (0.0, "0.0"), (float("nan"), "nan")):
        (tmp_path / "hidden" / "keyword.json").write_text(json.dumps({**metadata, "scale": bad}))
        with pytest.raises(EnrollmentError, match=f"'hidden' .* is unreadable .*scale {shown}"):
            store.load("hidden")


def test_a_voice_keyword_round_trips_with_its_two_scales_in_a_format_older_code_refuses(tmp_path):
    store = KeywordStore(tmp_path)
    store.save(dataclasses.replace(_keyword("voiced"), kind=VOICE, centre=np.zeros(8, np.float32), scale=(2.9, 0.12)))
    assert store.load("voiced").scale == (2.9, 0.12) and store.load("voiced").kind == VOICE
    metadata = json.loads((tmp_path / "voiced" / "keyword.json").read_text())
    assert metadata["format"] == "kwstream-enrolled-4"
    for bad in (None, 0.9, [2.9], [2.9, -1.0], [2.9, "x"]):
        (tmp_path / "voiced" / "keyword.json").write_text(json.dumps({**metadata, "scale": bad}))
        with pytest.raises(EnrollmentError, match="'voiced' .* is unreadable .*scale"):
            store.load("voiced")


def test_a_centred_hidden_keyword_scores_zero_at_its_scale_and_one_on_its_example():
    """``hidden_score``: 1 - distance / scale, clipped; older hidden keywords keep 1 - 2 x distance."""
    np.testing.assert_allclose(hidden_score([0.0, 0.3, 0.6, 1.5], 0.6), [1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(hidden_score([0.1, 0.6], UNCENTRED_SCALE), [0.8, 0.0])
    rng = np.random.default_rng(6)
    example = rng.standard_normal((6, 8)).astype(np.float32)
    window = EncodedFrames(np.zeros((9, 4), np.float32), {3: np.vstack([rng.standard_normal((3, 8)), example])})
    found = EnrolledScorer(["a", "b"], [3, 3], [[example], [example]], [None, None], [HIDDEN, HIDDEN],
                           centres=[np.zeros(8, np.float32), None], scales=[0.9, None]).score_frames(window)
    assert found[0].score == found[1].score == pytest.approx(1.0) and (found[0].start_frame, found[0].end_frame) == (3, 9)
    elsewhere = EnrolledScorer(["a", "b"], [3, 3], [[example[:, ::-1]], [example[:, ::-1]]], [None, None], [HIDDEN, HIDDEN],
                               centres=[np.zeros(8, np.float32), None], scales=[CENTRED_SCALE, None]).score_frames(window)
    assert 0.2 < elsewhere[0].score < 1.0 and elsewhere[1].score < elsewhere[0].score  # the wider scale clips less
    with pytest.raises(ValueError, match="needs its scale"):  # a centred keyword never falls back to the uncentred scale
        EnrolledScorer(["a"], [3], [[example]], [None], [HIDDEN], centres=[np.zeros(8, np.float32)])


def test_the_scorer_centres_windows_as_their_keywords_examples():
    """A window's hidden states less the keyword's centre: the examples were stored centred."""
    rng = np.random.default_rng(3)
    centre = rng.standard_normal(8).astype(np.float32) * 5
    example = rng.standard_normal((6, 8)).astype(np.float32)
    window = EncodedFrames(np.zeros((6, 4), np.float32), {3: example + centre})
    scorer = EnrolledScorer(["a"], [3], [[example]], [None], [HIDDEN], centres=[centre], scales=[0.5])
    assert scorer.score_frames(window)[0].score == pytest.approx(1.0)
    assert EnrolledScorer(["a"], [3], [[example]], [None], [HIDDEN]).score_frames(window)[0].score < 0.9


def test_of_two_keywords_that_match_the_same_frames_only_the_closer_keeps_its_score():
    """``closest_only``: a rival in the same group that scores higher on overlapping frames zeroes a match (its
    alignment kept); a rival elsewhere in the window, in another group, or level with it does not."""
    def m(score: float, start: int, end: int) -> KeywordMatch:
        return KeywordMatch(score, start, end)

    assert closest_only([m(0.8, 10, 20), m(0.5, 15, 25), m(0.6, 30, 40)], [0, 0, 0]) == [m(0.8, 10, 20), m(0.0, 15, 25), m(0.6, 30, 40)]
    assert closest_only([m(0.8, 10, 20), m(0.5, 15, 25)], [0, 1]) == [m(0.8, 10, 20), m(0.5, 15, 25)]
    assert closest_only([m(0.5, 10, 20), m(0.5, 12, 22)], [0, 0]) == [m(0.5, 10, 20), m(0.5, 12, 22)]
    assert closest_only([m(0.8, 10, 20), m(0.5, 20, 25)], [0, 0]) == [m(0.8, 10, 20), m(0.5, 20, 25)]  # touching only


def test_an_enrolled_word_fires_the_keyword_it_is_most_like_not_its_neighbour():
    """Two letter keywords whose takes are alike (a speaker's "six" and "seven" both match either): on the first one's
    word only the first keeps its score; with both words in the window, each keeps its own. Hidden-state keywords,
    each scaled by its own ``scale``, do not compete."""
    rng = np.random.default_rng(8)
    letters = lambda n: rng.dirichlet(np.full(30, 0.05), size=n).astype(np.float32)  # noqa: E731  (peaky, as CTC frames are)
    six = letters(8)
    seven = np.vstack([six[:5], letters(3)])  # begins as "six" does
    log_probs = lambda rows: np.log(np.hstack([np.full((len(rows), 1), 1e-6, np.float32), rows + 1e-6]))  # noqa: E731  (blank first)
    scorer = EnrolledScorer(["six", "seven"], [3, 3], [[six], [seven]], [None, None], [LETTERS, LETTERS], blank=0, letters=30)
    said_six = EncodedFrames(log_probs(np.vstack([letters(6), six, letters(6)])), {})
    apart = scorer.matches(said_six)
    assert apart[0].score > apart[1].score > 0.1 and apart[1].start_frame < apart[0].end_frame, apart  # heard apart, both match
    found = scorer.score_frames(said_six)
    assert found[0] == apart[0] and found[1] == KeywordMatch(0.0, apart[1].start_frame, apart[1].end_frame)
    both = EncodedFrames(log_probs(np.vstack([letters(6), six, letters(8), seven, letters(6)])), {})
    assert [(f.start_frame, f.score > 0) for f in scorer.score_frames(both)] == [(6, True), (22, True)]
    hidden = EnrolledScorer(["six", "seven"], [3, 3], [[six], [seven]], [None, None], [HIDDEN, HIDDEN],
                            centres=[np.zeros(30, np.float32)] * 2, scales=[0.3, 0.9])
    assert hidden.rivals[0] != hidden.rivals[1]


def test_voice_keywords_heard_together_compete_and_listen_at_the_lower_floor(tmp_path, bundled):
    """Voice keywords of one layer and centre are rivals (``rival_groups``), and one heard beside a rival listens at
    ``RIVALS_FLOOR`` times its takes' lowest leave-one-out score, over the negatives' own threshold; alone, or a
    letters + hidden keyword, or one enrolled before the negatives' threshold was stored, keeps the enrolled one."""
    from kwstream.assets import DEMO_AUDIO
    from kwstream.enroll.enroll import example_features, feature_centre
    from kwstream.keywords.enrolled.scorer import matching_groups, rival_groups
    from kwstream.keywords.enrolled.store import RIVALS_FLOOR

    centre = feature_centre(bundled, 3)
    voice, other_voice, fused, hidden, other_hidden = rival_groups(matching_groups([VOICE, VOICE, FUSED, HIDDEN, HIDDEN], [3] * 5, [centre] * 5))
    assert voice == other_voice and len({voice, fused, hidden, other_hidden}) == 4
    assert len(set(rival_groups(matching_groups([VOICE, VOICE, HIDDEN, HIDDEN], [3, 2, 3, 3], [centre] * 4)))) == 4  # other layer; hidden alone
    audio = read_audio(DEMO_AUDIO)
    said = {"hey": (0.3, 1.6), "stop": (9.3, 10.6)}
    store = KeywordStore(tmp_path)
    for name, (start, end) in said.items():
        take = prepare(audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)], name, EnrollSettings())
        example = example_features(bundled, take, 3, EnrollSettings(), VOICE, centre)
        calibration = {"from_negatives": 0.3 if name == "hey" else 0.6, "leave_one_out": [0.8, 0.7, 0.75]}
        store.save(EnrolledKeyword(name, 3, 0.63, bundled.fingerprint, bundled.name, [example] * 3, [], calibration, VOICE,
                                   centre, (3.0, 0.12)))
    store.save(dataclasses.replace(store.load("hey"), name="old", calibration={"leave_one_out": [0.8, 0.7, 0.75]}))
    store.save(dataclasses.replace(store.load("hey"), name="edited", calibration={"from_negatives": None, "leave_one_out": []}))
    assert load_scorer(["hey"], store, bundled).thresholds == {"hey": 0.63}
    assert load_scorer(["hey", "stop", "old", "edited"], store, bundled).thresholds == {
        "hey": round(RIVALS_FLOOR * 0.7, 4), "stop": 0.6, "old": 0.63, "edited": 0.63}


def test_store_round_trip_in_plain_files(tmp_path):
    store = KeywordStore(tmp_path / "kw")
    assert store.names() == []
    folder = store.save(_keyword())
    assert sorted(p.name for p in folder.iterdir()) == ["examples.npz", "keyword.json"]
    assert json.loads((folder / "keyword.json").read_text())["threshold"] == 0.42
    loaded = store.load("hello")
    for got, want in zip(loaded.examples, _keyword().examples):
        np.testing.assert_array_equal(got, want)
    assert (loaded.layer, loaded.threshold, loaded.fingerprint, loaded.sources) == (3, 0.42, "abc", ["a.wav", "b.wav", "c.wav"])
    with pytest.raises(EnrollmentError, match="already enrolled"):
        store.save(_keyword())
    store.save(_keyword(fingerprint="def"), replace=True)
    assert store.load("hello").fingerprint == "def" and store.names() == ["hello"]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]  # no staging left behind
    store.save(dataclasses.replace(_keyword(), kind=LETTERS), replace=True)
    assert store.load("hello").kind == LETTERS
    store.remove("hello")
    assert store.names() == []


def test_store_refuses_bad_names_unknown_and_corrupt_keywords(tmp_path):
    store = KeywordStore(tmp_path)
    with pytest.raises(EnrollmentError, match="letters, digits"):
        store.save(_keyword("../evil"))
    with pytest.raises(EnrollmentError, match="no enrolled keyword 'nope'"):
        store.load("nope")
    store.save(_keyword())
    (tmp_path / "hello" / "examples.npz").write_bytes(b"not a zip")
    with pytest.raises(EnrollmentError, match="unreadable"):
        store.load("hello")


@pytest.fixture(scope="module")
def bundled() -> Encoder:
    return Encoder(EncoderSettings(model=str(BUNDLED), threads=1))


def test_a_keyword_from_another_model_is_refused(tmp_path, tiny_model, bundled):
    keyword = _keyword(fingerprint=bundled.fingerprint)
    check_model(keyword, bundled)
    tiny = Encoder(EncoderSettings(model=str(tiny_model)))
    with pytest.raises(EnrollmentError, match="enrolled with model some/model .* enroll it again"):
        check_model(keyword, tiny)
    KeywordStore(tmp_path).save(keyword)
    with pytest.raises(EnrollmentError, match="not with"):
        load_scorer(["hello"], KeywordStore(tmp_path), tiny)


@needs_fsdd
def test_enrollment_refuses_too_few_empty_and_mismatched_examples(bundled):
    settings = EnrollSettings()
    word = read_audio(RECORDINGS / "7_jackson_0.wav")
    with pytest.raises(EnrollmentError, match="at least 2"):
        enroll("seven", [(word, "a.wav")], bundled, SpotterSettings())
    silence = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 1e-4
    with pytest.raises(EnrollmentError, match="b.wav holds no speech"):
        enroll("seven", [(word, "a.wav"), (silence, "b.wav")], bundled, SpotterSettings())
    three_words = np.concatenate([read_audio(RECORDINGS / f"{d}_jackson_0.wav") for d in (7, 3, 9)])
    with pytest.raises(EnrollmentError, match="at most 3 s"):
        prepare(np.concatenate([three_words] * 2), "long.wav", settings)
    examples = [prepare(word, "a.wav", settings), prepare(word, "b.wav", settings), prepare(three_words, "c.wav", settings)]
    with pytest.raises(EnrollmentError, match="c.wav is .* more than 2.5x apart"):
        check_examples(examples)


@needs_fsdd
def test_a_silent_clipped_or_too_short_take_is_refused_with_a_one_line_reason():
    settings = EnrollSettings()
    word = read_audio(RECORDINGS / "7_jackson_0.wav")
    loudest = int(np.argmax(np.abs(word)))
    takes = {
        "silent.wav": (np.zeros(SAMPLE_RATE, np.float32), "holds no speech"),
        "quiet.wav": (word / np.abs(word).max() * 10 ** (-45 / 20), r"holds no speech .*loudest sample -45 dBFS"),
        "clipped.wav": (np.clip(word * 20, -1, 1), r"is clipped \(1\d\.\d% of its samples at full scale\)"),
        "burst.wav": (word[loudest - 400:loudest + 400], r"is too short \(0\.0\d s of sound"),
    }
    for source, (audio, reason) in takes.items():
        with pytest.raises(EnrollmentError, match=f"example {source} {reason}") as refused:
            prepare(audio, source, settings)
        assert "\n" not in str(refused.value)
    assert prepare(word, "word.wav", settings).seconds > 0.3  # the take these were made of passes


SPANISH = REPO.parent / "shared" / "data" / "precise" / "not-wake-words" / "es"


@pytest.mark.skipif(not SPANISH.is_dir(), reason="needs ../shared/data/precise")
def test_a_spanish_word_enrolls_and_round_trips_through_the_store(tmp_path, bundled):
    """Real home-microphone takes of "aspirador" (metadata.csv: its transcript); no spelling is
    involved, so the path is the one English words take. The takes are noisy (the VAD hears
    speech through most of them), so enrollment narrows them to their loud part. Most triples of these takes are refused
    as disagreeing, by versions 11 and 12 alike (2 of 16 triples of the set's fit takes enroll, the same two on both);
    this is one of the two. The triple used before (1ddbebac, 27b00122, 3d272ba2) sat at the floor of 0.1: its weakest
    take scored 0.105 on version 11 and 0.09 on version 12."""
    def take(prefix: str) -> tuple[np.ndarray, str]:
        [path] = SPANISH.glob(f"not-wakeword-es-{prefix}-*.flac")
        return read_audio(path), path.name

    transcripts = dict(line.split(",")[:2] for line in (SPANISH / "metadata.csv").read_text().splitlines() if line)
    takes = [take(p) for p in ("27b00122", "2ab80fc2", "3d272ba2")]
    assert {transcripts[Path(name).with_suffix(".wav").name] for _, name in takes} == {"aspirador"}
    keyword = enroll("aspirador", takes, bundled, SpotterSettings())
    assert keyword.kind == HIDDEN and keyword.spelling is None  # the takes do not match in the English model's letters: its hidden states serve
    store = KeywordStore(tmp_path)
    store.save(keyword)
    loaded = store.load("aspirador")
    assert (loaded.threshold, loaded.sources, loaded.calibration) == (keyword.threshold, keyword.sources, keyword.calibration)
    for got, want in zip(loaded.examples, keyword.examples):
        np.testing.assert_array_equal(got, want)
    # the stored keyword scores a held-out take exactly as the one enrolled in memory does
    held_out = take("1ddbebac")
    settings = SpotterSettings()
    stored = pipeline_scores(prepare(*held_out, EnrollSettings()).audio, load_scorer(["aspirador"], store, bundled), bundled, settings)
    fresh = EnrolledScorer([keyword.name], [keyword.layer], [keyword.examples], [keyword.threshold], [keyword.kind], bundled.blank_id,
                           letter_count(bundled), [keyword.centre], [keyword.scale])
    np.testing.assert_array_equal(stored, pipeline_scores(prepare(*held_out, EnrollSettings()).audio, fresh, bundled, settings))
    assert stored.max() > 0


def _stream(names: list[str]) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """FSDD words with 1 s pauses over a faint noise floor, and where each lies."""
    rng = np.random.default_rng(0)
    parts, spans, position = [np.zeros(SAMPLE_RATE, np.float32)], [], SAMPLE_RATE
    for name in names:
        word = read_audio(RECORDINGS / f"{name}.wav")
        spans.append((name, position / SAMPLE_RATE, (position + len(word)) / SAMPLE_RATE))
        parts += [word, np.zeros(SAMPLE_RATE, np.float32)]
        position += len(word) + SAMPLE_RATE
    audio = np.concatenate(parts)
    return audio + rng.standard_normal(len(audio)).astype(np.float32) * 3e-4, spans


def _spot(encoder: Encoder, keyword: EnrolledKeyword, store_dir: Path, audio_path: Path) -> list:
    store = KeywordStore(store_dir)
    store.save(keyword, replace=True)
    scorer = load_scorer([keyword.name], store, encoder)
    spotter = Spotter(scorers=[scorer], source=AudioFile(audio_path, realtime=False), settings=SpotterSettings(),
                      encoder=encoder)
    with spotter:
        return list(spotter.detections())


@needs_fsdd
@pytest.mark.parametrize("headless", [False, pytest.param(True, marks=pytest.mark.slow)])  # True saves and loads a checkpoint
def test_an_enrolled_digit_is_spotted_in_the_same_speakers_speech(tmp_path, bundled, headless):
    import soundfile
    from transformers import AutoFeatureExtractor, Wav2Vec2Model

    encoder = bundled
    if headless:  # the same encoder without its CTC head: a pretrained-only checkpoint
        Wav2Vec2Model.from_pretrained(BUNDLED).save_pretrained(tmp_path / "headless")
        AutoFeatureExtractor.from_pretrained(BUNDLED).save_pretrained(tmp_path / "headless")
        encoder = Encoder(EncoderSettings(model=str(tmp_path / "headless"), threads=1))
        assert not encoder.has_ctc_head
    examples = [(read_audio(RECORDINGS / f"7_jackson_{i}.wav"), f"7_jackson_{i}") for i in range(3)]
    keyword = enroll("seven", examples, encoder, SpotterSettings())
    assert keyword.layer == 3 and len(keyword.examples) == 3 and 0.1 < keyword.threshold < 1
    audio, spans = _stream(["3_jackson_10", "7_jackson_10", "9_jackson_10", "1_jackson_10", "7_jackson_11", "6_jackson_10"])
    soundfile.write(tmp_path / "talk.flac", audio, SAMPLE_RATE)
    detections = _spot(encoder, keyword, tmp_path / "store", tmp_path / "talk.flac")
    sevens = [(start, end) for name, start, end in spans if name.startswith("7_")]
    assert len(detections) == 2, detections
    for d, (start, end) in zip(detections, sevens):
        assert start - 0.3 <= d.start < d.end <= end + 0.3 and d.score >= keyword.threshold  # the bundled model's end-to-end tolerance


@needs_fsdd
@pytest.mark.slow
def test_a_word_enrolled_in_one_voice_is_spotted_in_other_speakers_speech(tmp_path, bundled):
    """Letters + hidden states are the default for any voice: jackson's "seven" in lucas's and nicolas's digits. Other
    voices score below the takes' matches of each other, which is why its floor is 0.7 of them: nicolas's sevens 42
    and 47 score about 0.22 alone, under the 0.24 that a floor of 0.9 gives (in this stream one of them clears it:
    at 0.9, 3 of the 4 sevens are found)."""
    import soundfile

    examples = [(read_audio(RECORDINGS / f"7_jackson_{i}.wav"), f"7_jackson_{i}") for i in range(3)]
    keyword = enroll("seven", examples, bundled, SpotterSettings())
    lowest = min(keyword.calibration["leave_one_out"])  # the bundled speech allows lower: the floor decides
    assert keyword.kind == FUSED and keyword.threshold == pytest.approx(FLOOR_FRACTIONS[FUSED] * lowest, abs=1e-4)
    words = [f"{digit}_lucas_{index}" for digit, index in [(3, 10), (7, 10), (9, 10), (1, 10), (7, 11), (6, 10)]]
    words += [f"{digit}_nicolas_{index}" for digit, index in [(3, 10), (7, 42), (9, 10), (1, 10), (7, 47), (6, 10)]]
    audio, spans = _stream(words)
    soundfile.write(tmp_path / "talk.flac", audio, SAMPLE_RATE)
    detections = _spot(bundled, keyword, tmp_path / "store", tmp_path / "talk.flac")
    sevens = [(start, end) for name, start, end in spans if name.startswith("7_")]
    assert len(detections) == len(sevens), (detections, keyword.threshold)
    for d, (start, end) in zip(detections, sevens):
        assert start - 0.3 <= d.start < d.end <= end + 0.3


@needs_fsdd
@pytest.mark.slow
def test_a_voice_keyword_is_spotted_in_the_same_speakers_speech(tmp_path, bundled):
    """``enroll --voice``: theo's "seven" from three takes, found in a stream of his other digits through the store and
    a Spotter (the speech embedding read from the capture's ring, up to 0.87 s back)."""
    import soundfile

    examples = [(read_audio(RECORDINGS / f"7_theo_{i}.wav"), f"7_theo_{i}") for i in range(3)]
    keyword = enroll("seven", examples, bundled, SpotterSettings(), kind=VOICE)
    assert keyword.kind == VOICE and len(keyword.scale) == 2 and keyword.spelling is None  # the voice keyword: no spelling
    assert keyword.calibration["from_negatives"] <= keyword.threshold  # kept for listening beside rivals
    np.testing.assert_allclose(np.linalg.norm(keyword.examples[0][:, -96:], axis=1), 1.0, atol=1e-5)  # the voice: unit rows
    audio, spans = _stream(["3_theo_10", "7_theo_10", "9_theo_10", "1_theo_10", "7_theo_11", "6_theo_10", "8_theo_10"])
    soundfile.write(tmp_path / "talk.flac", audio, SAMPLE_RATE)
    detections = _spot(bundled, keyword, tmp_path / "store", tmp_path / "talk.flac")
    sevens = [(start, end) for name, start, end in spans if name.startswith("7_")]
    assert len(detections) == 2, detections
    for d, (start, end) in zip(detections, sevens):
        assert start - 0.3 <= d.start < d.end <= end + 0.3 and d.score >= keyword.threshold


@pytest.mark.slow
@pytest.mark.parametrize("kind", [HIDDEN, VOICE])
def test_one_pass_over_speech_gives_the_scale_and_the_scores_the_pipeline_gives_at_it(bundled, kind):
    """Enrollment encodes the bundled speech once for a scaled keyword (``speech_matches``): the costs it keeps give
    the scale, and at that scale exactly the scores that the pipeline with the keyword itself gives."""
    from kwstream.assets import DEMO_AUDIO, NEGATIVE_SPEECH
    from kwstream.enroll.enroll import example_features, feature_centre, speech_matches
    from kwstream.stream.pipeline import PipelineSettings

    audio = read_audio(DEMO_AUDIO)
    hey = prepare(audio[int(0.3 * SAMPLE_RATE):int(1.6 * SAMPLE_RATE)], "hey", EnrollSettings())
    centre = feature_centre(bundled, 3)
    example = example_features(bundled, hey, 3, EnrollSettings(), kind, centre)
    speech, settings = read_audio(NEGATIVE_SPEECH)[:30 * SAMPLE_RATE], PipelineSettings()
    matches = speech_matches([example], 3, bundled, settings, centre, kind, speech)
    scale = matches.voice_scales() if kind == VOICE else matches.hidden_scale(settings.detector)
    assert np.all(np.asarray(scale) > 0.05)  # a mean distance, not the floor of 1e-3
    scorer = EnrolledScorer(["hey"], [3], [[example]], [None], [kind], bundled.blank_id, letter_count(bundled), [centre], [scale])
    expected = pipeline_scores(speech, scorer, bundled, settings)
    assert len(expected) > 20
    np.testing.assert_allclose(matches.compared_scores(scale, settings.detector), expected, rtol=0, atol=1e-9)


@needs_fsdd
@pytest.mark.slow
@pytest.mark.parametrize("kind", [HIDDEN, VOICE])
def test_enrollment_calibrates_on_the_one_pass_scores_as_on_its_own(bundled, kind):
    """``scaled_calibration``, which both of ``enroll``'s paths take (the asked-for kind and the hidden-states fallback),
    hands calibration the bundled speech's scores from the pass that gave the scale: the same threshold, recall and
    false alarms as calibration scoring that speech through a pipeline of its own at that scale."""
    from kwstream.enroll.enroll import calibrate, example_features, feature_centre, scaled_calibration
    from kwstream.stream.pipeline import PipelineSettings

    examples = [prepare(read_audio(RECORDINGS / f"7_theo_{i}.wav"), f"7_theo_{i}", EnrollSettings(), seed=i) for i in range(3)]
    centre, settings = feature_centre(bundled, 3), PipelineSettings()
    features = [example_features(bundled, e, 3, EnrollSettings(), kind, centre) for e in examples]
    scale, calibration, spelling = scaled_calibration("seven", examples, features, 3, bundled, (), settings, 0.5, kind, centre)
    assert scale is not None and spelling is None  # no take's spelling given: none
    alone, _ = calibrate("seven", examples, features, 3, bundled, (), settings, 0.5, kind, centre, scale)
    assert (calibration.threshold, calibration.as_dict()) == (alone.threshold, alone.as_dict())


def test_a_voice_keyword_listens_through_the_pipeline_with_the_speech_embedding(bundled):
    """The pipeline adds each window's speech embedding (``_with_voice``): "hey" from the demo, as a voice keyword, is
    found where it is said and every window scores without an error."""
    from kwstream.assets import DEMO_AUDIO
    from kwstream.enroll.enroll import example_features, feature_centre
    from kwstream.keywords.keyword_set import KeywordSet
    from kwstream.stream.events import ScoredWindow
    from kwstream.stream.pipeline import VOICE_HISTORY, KeywordPipeline, PipelineSettings, run

    audio = read_audio(DEMO_AUDIO)
    hey = prepare(audio[int(0.3 * SAMPLE_RATE):int(1.6 * SAMPLE_RATE)], "hey", EnrollSettings())  # "hey" at 0.83-1.11 s
    centre = feature_centre(bundled, 3)
    example = example_features(bundled, hey, 3, EnrollSettings(), VOICE, centre)
    scorer = EnrolledScorer(["hey"], [3], [[example]], [None], [VOICE], bundled.blank_id, letter_count(bundled), [centre], [(3.0, 0.12)])
    pipeline = KeywordPipeline(KeywordSet(bundled, scorers=[scorer]), bundled, PipelineSettings())
    plain = KeywordPipeline(KeywordSet(bundled, ["hey"]), bundled, PipelineSettings())
    assert pipeline._history_capacity == plain._history_capacity + VOICE_HISTORY  # the ring holds the up to 0.87 s the voice reads back
    windows = [e for e in run(pipeline, audio) if isinstance(e, ScoredWindow)]
    assert pipeline.stats.window_errors == 0 and len(windows) == pipeline.stats.windows > 10 and pipeline.ring.overrun_samples == 0
    best = max(windows, key=lambda w: w.scores["hey"].score)
    assert best.scores["hey"].start < 1.11 and best.scores["hey"].end > 0.83 and best.scores["hey"].score > 0.5, best
    # a reset forgets the embedded steps: the next stream scores as a new pipeline scores it (steps keep their
    # positions, so the last stream's rows would be taken for this one's: here "hey" said where "stop" was)
    other = audio.copy()
    other[int(9.3 * SAMPLE_RATE):int(10.6 * SAMPLE_RATE)] = audio[int(0.3 * SAMPLE_RATE):int(1.6 * SAMPLE_RATE)]
    pipeline.reset()
    again = [e for e in run(pipeline, other) if isinstance(e, ScoredWindow)]
    fresh = [e for e in run(KeywordPipeline(KeywordSet(bundled, scorers=[scorer]), bundled, PipelineSettings()), other)
             if isinstance(e, ScoredWindow)]
    assert max(w.scores["hey"].score for w in fresh if w.start_s > 9.0) > 0.5  # found where the last stream said "stop"
    assert [w.scores["hey"].score for w in again] == [w.scores["hey"].score for w in fresh]


def test_calibration_sees_only_the_scores_the_detector_compares():
    """A window whose own score is 0 has no alignment and never fires: smoothing it into its
    neighbour (as np.convolve did) made a score of 0.4 here that no threshold could ever fire on."""
    from kwstream.stream.replay import compared_scores, replay
    from kwstream.stream.detector import DetectorSettings
    from kwstream.stream.detector import WindowScore
    from kwstream.stream.events import ScoredWindow

    def windows(scores):
        return [ScoredWindow(i * 0.25, i * 0.25 + 1.5, {"kw": WindowScore("kw", s, i * 0.25, i * 0.25 + 0.5)}, 0.0)
                for i, s in enumerate(scores)]

    settings = DetectorSettings(lone_window_margin=math.inf)  # the mean alone, for round numbers
    assert compared_scores(windows([0.8, 0.0]), "kw", settings) == []
    assert replay(windows([0.8, 0.0]), "kw", 0.35, settings) == []
    assert compared_scores(windows([0.0, 0.8, 0.6]), "kw", settings) == pytest.approx([0.4, 0.7])
    assert len(replay(windows([0.0, 0.8, 0.6]), "kw", 0.7, settings)) == 1


@needs_fsdd
def test_listens_pipeline_fires_on_exactly_the_examples_whose_leave_one_out_score_reaches_the_threshold(bundled):
    """Calibration scores the takes as listen does: the expected recall is what listen finds among them."""
    from kwstream.keywords.keyword_set import KeywordSet
    from kwstream.stream.detector import Detection
    from kwstream.stream.pipeline import KeywordPipeline, run

    settings = SpotterSettings()
    recordings = [(read_audio(RECORDINGS / f"7_jackson_{i}.wav"), f"7_jackson_{i}") for i in range(3)]
    keyword = enroll("seven", recordings, bundled, settings)
    for i, (audio, source) in enumerate(recordings):
        example = prepare(audio, source, EnrollSettings(), seed=i)  # as enroll() prepared it
        others = [f for j, f in enumerate(keyword.examples) if j != i]  # leave one out, as calibration does
        scorer = EnrolledScorer([keyword.name], [keyword.layer], [others], [keyword.threshold], [keyword.kind], bundled.blank_id, letter_count(bundled),
                               [keyword.centre], [keyword.scale])
        pipeline = KeywordPipeline(KeywordSet(bundled, scorers=[scorer]), bundled, settings, events=False)
        fired = [d for d in run(pipeline, example.audio) if isinstance(d, Detection)]
        reaches = keyword.calibration["leave_one_out"][i] >= keyword.threshold
        assert bool(fired) == reaches, (source, keyword.threshold, keyword.calibration)
        assert not fired or fired[0].score >= keyword.threshold
    found = np.mean([p >= keyword.threshold for p in keyword.calibration["leave_one_out"]])
    assert 0 < found == pytest.approx(keyword.calibration["expected_recall"], abs=1e-3)


def test_the_bundled_negatives_are_a_few_minutes_of_real_keyword_free_speech_in_a_small_file():
    """What enrollment calibrates on (training/negative_speech.py): real speech, not synthetic; none of
    the development measurements' digits or speakers, no wake-word benchmark clip; small enough to ship."""
    from kwstream.assets import NEGATIVE_SPEECH
    from training.negative_speech import REAL

    minutes = len(read_audio(NEGATIVE_SPEECH)) / SAMPLE_RATE / 60
    assert 3 <= minutes <= 5 and NEGATIVE_SPEECH.stat().st_size < 600_000, (minutes, NEGATIVE_SPEECH.stat().st_size)
    digits = "zero one two three four five six seven eight nine".split()
    folders = [folder for folder, _ in REAL]
    assert all(folder.split("/")[0] in ("precise", "speech_commands") for folder in folders), folders
    assert not [f for f in folders if f.split("/")[-1] in digits], folders
