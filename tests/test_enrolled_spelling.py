"""An enrolled keyword's spelling: what its takes read alike, scored as a typed keyword beside the match
(``kwstream.keywords.enrolled.spelled``), stored with the keyword and found in other speakers' speech."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from kwstream.audio.io import read_audio
from kwstream.enroll.enroll import enroll
from kwstream.keywords.base import KeywordMatch
from kwstream.keywords.enrolled.scorer import FUSED, HIDDEN, EnrolledScorer, letter_count
from kwstream.keywords.enrolled.spelled import MARGIN, SpelledOr, Spelling, agreed_spelling, combined_score, greedy_spelling, stricter_than_typed
from kwstream.keywords.enrolled.store import EnrollmentError, KeywordStore, load_scorer
from kwstream.keywords.keyword_set import KeywordSet, typed_scorer
from kwstream.model.encoder import EncodedFrames
from kwstream.spotter import SpotterSettings
from test_enrolled import BUNDLED, RECORDINGS, _keyword, _spot, _stream, bundled, needs_fsdd  # noqa: F401  (bundled: a fixture)

TOKENS = ["<pad>", "<s>", "|", "A", "B", "C"]
BLANK, DELIMITER = 0, 2


def _frames(ids: list[int]) -> np.ndarray:
    """Log-probabilities whose best token in frame t is ``ids[t]``."""
    log_probs = np.full((len(ids), len(TOKENS)), np.log(0.02))
    log_probs[np.arange(len(ids)), ids] = np.log(0.9)
    return log_probs


def test_greedy_spelling_drops_repeats_blanks_and_special_tokens_and_keeps_words_apart():
    assert greedy_spelling(_frames([0, 3, 3, 0, 3, 4, 1, 2, 2, 5, 0]), TOKENS, BLANK, DELIMITER) == "aab c"
    assert greedy_spelling(_frames([2, 0, 4, 2]), TOKENS, BLANK, DELIMITER) == "b"  # no spaces at the edges
    assert greedy_spelling(_frames([0, 0]), TOKENS, BLANK, DELIMITER) == ""


def test_the_agreed_spelling_is_held_by_most_takes_and_is_a_word_not_a_fragment():
    assert agreed_spelling(["seven", "seven", "sa"]) == "seven"  # jackson's takes read alike; one of theo's did not
    assert agreed_spelling(["sa", "seven", "sev"]) is None
    assert agreed_spelling(["six", "ix", "six"]) == "six"
    assert agreed_spelling(["e", "e", "e"]) is None  # too short to be the word
    assert agreed_spelling(["one", "one"]) == "one" and agreed_spelling(["one", "on"]) is None
    assert agreed_spelling(["ab c", "ab c", "x", "y"]) == "ab c"  # half of four, more than any other
    assert agreed_spelling(["abc", "abc", "xyz", "xyz"]) is None and agreed_spelling(["xyz", "xyz", "abc", "abc"]) is None  # a tie
    assert agreed_spelling(["nine", "nine", "x", "y", "z"]) is None  # two of five is no majority
    assert agreed_spelling([]) is None


def test_the_spelling_fires_where_it_reaches_its_own_threshold_at_the_keywords():
    """The keyword's threshold 0.2 and the spelling's 0.4: readings are shifted down by 0.2, so a reading of 0.4 scores
    0.2; the match's score stands where it is the higher; nothing read scores 0 even where the shift is upwards."""
    assert combined_score(0.1, 0.4, 0.2, 0.4) == pytest.approx(0.2)
    assert combined_score(0.1, 0.39, 0.2, 0.4) < 0.2 and combined_score(0.3, 0.39, 0.2, 0.4) == 0.3
    assert combined_score(0.0, 1.0, 0.2, 0.4) == pytest.approx(0.8) and combined_score(0.0, 0.1, 0.2, 0.4) == 0.0
    assert combined_score(0.0, 0.0, 0.5, 0.3) == 0.0 and combined_score(0.0, 0.9, 0.5, 0.3) == 1.0


def test_the_detector_fires_on_the_shifted_reading_where_it_would_on_the_reading_at_its_own_threshold():
    """The detector's two tests (the mean of two windows, a lone window less its margin) see the shifted readings as
    they see the readings themselves: windows fire at the keyword's threshold where they fire at the spelling's (for a
    keyword's threshold of the lone window's margin, 0.2, or more; under it a reading clipped at 0 can differ)."""
    from kwstream.stream.detector import DetectorSettings, WindowScore
    from kwstream.stream.events import ScoredWindow
    from kwstream.stream.replay import compared_scores

    detector = DetectorSettings()

    def fired(scores, threshold: float) -> bool:
        windows = [ScoredWindow(i * 0.25, i * 0.25 + 1.5, {"k": WindowScore("k", float(s), 0.0, 0.5)}, 0.0) for i, s in enumerate(scores)]
        return max(compared_scores(windows, "k", detector), default=-1.0) >= threshold

    rng = np.random.default_rng(4)
    for keyword_threshold, spelling_at_ in ((0.2, 0.54), (0.36, 0.36), (0.5, 0.3)):
        for _ in range(500):
            readings = rng.uniform(0.0, 1.0, size=int(rng.integers(1, 5)))
            shifted = [combined_score(0.0, r, keyword_threshold, spelling_at_) for r in readings]
            assert fired(readings, spelling_at_) == fired(shifted, keyword_threshold)


def test_a_spellings_threshold_rises_where_keyword_free_speech_reads_it_and_is_dropped_at_one():
    """``spelling_at``: 1.5 times a typed keyword's threshold, or where the speech's readings reach the target rate (an
    hour of them here, so the count decides: the 11th highest of 50 at 10 an hour) if that is higher."""
    from kwstream.enroll.enroll import spelling_at

    quiet = np.linspace(0.01, 0.3, 50)
    assert spelling_at("seven", 0.36, quiet, 1.0, 10.0) == Spelling("seven", 0.54)
    loud = np.linspace(0.5, 0.9, 50)
    raised = spelling_at("seven", 0.36, loud, 1.0, 10.0)
    assert raised.threshold == pytest.approx(np.sort(loud)[::-1][10], abs=1e-4) and raised.threshold > 0.54
    assert spelling_at("seven", 0.7, quiet, 1.0, 10.0) is None  # 1.5 x 0.7 is past 1
    assert spelling_at("seven", 0.36, np.full(50, 1.0), 1.0, 0.5) is None  # the speech reads it everywhere, fully


def test_a_calibration_that_may_have_a_spelling_scores_the_bundled_speech_itself():
    from kwstream.enroll.enroll import calibrate

    with pytest.raises(ValueError, match="leave out `bundled`"):
        calibrate("seven", [], [], 3, None, (), None, bundled=np.zeros(3), take_spellings=["seven", "sa"])


def test_the_spellings_threshold_is_stricter_than_a_typed_keywords():
    assert stricter_than_typed(0.36) == pytest.approx(0.54) and stricter_than_typed(0.8) == 1.0


def _reading(encoder, text: str, frames: int = 40) -> np.ndarray:
    """Log-probabilities that read ``text`` (letters three frames apart from frame 10, blanks around: pauses)."""
    log_probs = np.full((frames, len(encoder.tokens)), -8.0)
    log_probs[:, encoder.blank_id] = -0.01
    for i, letter in enumerate(text):
        log_probs[10 + 3 * i, encoder.blank_id] = -8.0
        log_probs[10 + 3 * i, encoder.tokens.index(letter.upper())] = -0.01
    return log_probs


def test_keywords_with_a_spelling_are_found_where_it_is_read_and_the_others_keep_their_match(tiny_model):
    """``SpelledOr``: keywords 1 and 3 of four have spellings; a window that reads keyword 3's scores it its reading,
    mapped, with the reading's frames; keyword 1's reading is scored as its own; 0 and 2 keep their matches."""
    from kwstream.model.encoder import Encoder, EncoderSettings

    encoder = Encoder(EncoderSettings(model=str(tiny_model)))
    rng = np.random.default_rng(1)
    example = rng.standard_normal((5, 8)).astype(np.float32)
    enrolled = EnrolledScorer(["a", "b", "c", "d"], [1] * 4, [[example]] * 4, [0.3] * 4)
    log_probs = _reading(encoder, "dog")
    window = EncodedFrames(log_probs, {1: rng.standard_normal((40, 8)).astype(np.float32)})
    cat, dog = typed_scorer(encoder, ["cat", "dog"]).score(log_probs)
    assert dog.score > 0.5 > cat.score
    scorer = SpelledOr(enrolled, typed_scorer(encoder, ["cat", "dog"]), [None, Spelling("cat", 0.5), None, Spelling("dog", 0.5)],
                       [0.3] * 4)
    matched, got = enrolled.score_frames(window), scorer.score_frames(window)
    assert matched[3].score < 0.3 and got[3] == KeywordMatch(pytest.approx(combined_score(0.0, dog.score, 0.3, 0.5)),
                                                             dog.start_frame, dog.end_frame)
    assert got[1].score == pytest.approx(max(matched[1].score, combined_score(0.0, cat.score, 0.3, 0.5)))
    assert (got[0], got[2]) == (matched[0], matched[2])
    assert (scorer.keywords, scorer.layers, scorer.thresholds) == (enrolled.keywords, enrolled.layers, enrolled.thresholds)


def test_a_spelling_is_read_with_the_listeners_pause_between_words(tmp_path, tiny_model):
    """``load_scorer(..., pause_ms)``: a stored keyword's spelling ends a word after the blank time the listener gives
    typed keywords (``KeywordSettings.pause_ms``), so the two paths of one listener agree on where words end."""
    from kwstream.audio.io import SAMPLE_RATE
    from kwstream.model.encoder import Encoder, EncoderSettings

    encoder = Encoder(EncoderSettings(model=str(tiny_model)))
    rng = np.random.default_rng(3)
    takes = [rng.random((n, letter_count(encoder) + 8)).astype(np.float32) for n in (9, 10)]  # letters, then layer 1's states
    keyword = dataclasses.replace(_keyword("pet", encoder.fingerprint), layer=1, kind=FUSED, examples=takes,
                                  sources=["a.wav", "b.wav"], centre=np.zeros(8, np.float32), spelling=Spelling("dog", 0.5))
    store = KeywordStore(tmp_path)
    store.save(keyword)
    store.save(dataclasses.replace(keyword, name="plain", spelling=None))
    window = EncodedFrames(_reading(encoder, "dog"), {1: rng.standard_normal((40, 8)).astype(np.float32)})
    frame_ms = 1000 * encoder.samples_per_frame / SAMPLE_RATE
    short, long = round(8 * frame_ms), round(12 * frame_ms)  # 10 blank frames before "dog": a word boundary at 8, none at 12
    matched = load_scorer(["plain"], store, encoder, short).score_frames(window)[0].score
    assert matched < keyword.threshold  # the takes do not match: only the reading can fire
    heard = {pause: load_scorer(["pet"], store, encoder, pause).score_frames(window)[0].score for pause in (short, long)}
    assert heard[short] >= keyword.threshold > heard[long]


def test_calibration_joins_both_paths_window_by_window_as_the_scorer_does():
    """``heard_scores``: each window's match and reading joined (``combined_score``) before the detector smooths them."""
    from kwstream.enroll.enroll import MATCHED, SPELLED, heard_scores
    from kwstream.stream.detector import DetectorSettings, WindowScore
    from kwstream.stream.events import ScoredWindow
    from kwstream.stream.replay import compared_scores

    pairs = [(0.1, 0.2), (0.15, 0.6), (0.05, 0.9), (0.3, 0.1)]
    windows = [ScoredWindow(i * 0.25, i * 0.25 + 1.5, {MATCHED: WindowScore(MATCHED, m, 0.0, 0.5),
                                                       SPELLED: WindowScore(SPELLED, r, 0.0, 0.5)}, 0.0)
               for i, (m, r) in enumerate(pairs)]
    detector = DetectorSettings()
    alone = heard_scores(windows, detector)
    np.testing.assert_allclose(alone, compared_scores(windows, MATCHED, detector))
    joined = [ScoredWindow(w.start_s, w.end_s, {MATCHED: WindowScore(MATCHED, combined_score(m, r, 0.2, 0.5), 0.0, 0.5)}, 0.0)
              for w, (m, r) in zip(windows, pairs)]
    both = heard_scores(windows, detector, (0.2, 0.5))
    np.testing.assert_allclose(both, compared_scores(joined, MATCHED, detector))
    assert both.max() > alone.max()


def test_a_spelling_round_trips_and_a_bad_one_is_refused(tmp_path):
    store = KeywordStore(tmp_path)
    store.save(dataclasses.replace(_keyword("seven"), kind=FUSED, centre=np.zeros(8, np.float32), spelling=Spelling("seven", 0.36)))
    assert store.load("seven").spelling == Spelling("seven", 0.36)
    metadata = json.loads((tmp_path / "seven" / "keyword.json").read_text())
    assert metadata["format"] == "kwstream-enrolled-2"  # older code reads it, and scores the match alone
    for bad in ("seven", {"text": "", "threshold": 0.3}, {"text": "seven", "threshold": 0}, {"text": "seven", "threshold": 1},
                {"text": "seven"}, {"text": 7, "threshold": 0.3}, {"text": " seven", "threshold": 0.3}, {"text": "seven\n", "threshold": 0.3}):
        (tmp_path / "seven" / "keyword.json").write_text(json.dumps({**metadata, "spelling": bad}))
        with pytest.raises(EnrollmentError, match="'seven' .* is unreadable .*spelling"):
            store.load("seven")
    del metadata["spelling"]  # as keywords enrolled before spellings were kept
    (tmp_path / "seven" / "keyword.json").write_text(json.dumps(metadata))
    assert store.load("seven").spelling is None
    store.save(dataclasses.replace(_keyword("hidden"), kind=HIDDEN, centre=np.zeros(8, np.float32), scale=0.9))
    metadata = json.loads((tmp_path / "hidden" / "keyword.json").read_text())
    (tmp_path / "hidden" / "keyword.json").write_text(json.dumps({**metadata, "spelling": {"text": "seven", "threshold": 0.3}}))
    with pytest.raises(EnrollmentError, match="spelling .* of a hidden keyword"):  # only letters + hidden states keywords read
        store.load("hidden")


@needs_fsdd
@pytest.mark.slow
def test_a_word_enrolled_in_one_voice_is_read_in_another_where_its_takes_do_not_match(tmp_path, bundled):  # noqa: F811
    """jackson's takes of "zero" read "zero" alike: the keyword keeps that spelling, stricter than a typed "zero", and
    finds nicolas's zeros 10 and 20, which its takes alone miss (each scores about 0.18 against a threshold of 0.20,
    read about 0.6), and nothing among his other digits."""
    import soundfile

    examples = [(read_audio(RECORDINGS / f"0_jackson_{i}.wav"), f"0_jackson_{i}") for i in range(3)]
    keyword = enroll("zero", examples, bundled, SpotterSettings())
    typed = KeywordSet(bundled, ["zero"]).thresholds["zero"]
    assert keyword.kind == FUSED and keyword.spelling == Spelling("zero", round(MARGIN * typed, 4))
    assert keyword.calibration["method"].endswith(f"; its spelling at {keyword.spelling.threshold:.2f}")
    audio, spans = _stream(["3_nicolas_10", "0_nicolas_10", "9_nicolas_10", "1_nicolas_10", "0_nicolas_20", "6_nicolas_10"])
    soundfile.write(tmp_path / "talk.flac", audio, 16000)
    detections = _spot(bundled, keyword, tmp_path / "store", tmp_path / "talk.flac")
    assert isinstance(load_scorer(["zero"], KeywordStore(tmp_path / "store"), bundled), SpelledOr)
    zeros = [(start, end) for name, start, end in spans if name.startswith("0_")]
    assert len(detections) == len(zeros), detections
    for d, (start, end) in zip(detections, zeros):
        assert start - 0.3 <= d.start < d.end <= end + 0.3
    assert _spot(bundled, dataclasses.replace(keyword, spelling=None), tmp_path / "store", tmp_path / "talk.flac") == []


@needs_fsdd
@pytest.mark.slow
def test_a_spelling_that_keyword_free_speech_reads_is_held_higher_and_a_homophone_warns(tmp_path, capsys):
    """jackson's "one" reads "one": the bundled speech reads it more often than the target rate at 1.5 times a typed
    "one"'s threshold ("someone", "anyone"), so its threshold is higher; and enrollment warns as typing "one" would."""
    from kwstream.cli.main import main
    from kwstream.keywords.keyword_set import model_calibration
    from kwstream.model.encoder import Encoder, EncoderSettings

    takes = [str(RECORDINGS / f"1_jackson_{i}.wav") for i in range(3)]
    assert main(["enroll", "one", "--from", *takes, "--store", str(tmp_path), "--model", str(BUNDLED)]) == 0
    err = capsys.readouterr().err
    assert "(letter posteriors + layer 3, or read as 'one', threshold" in err
    [warning] = [line for line in err.splitlines() if line.startswith("kwstream: warning:")]
    assert warning.startswith('kwstream: warning: the takes read as \'one\', and "one" sounds like "won"')
    spelling = KeywordStore(tmp_path).load("one").spelling
    typed = model_calibration(Encoder(EncoderSettings(model=str(BUNDLED)))).threshold_for("one")
    assert spelling.text == "one" and stricter_than_typed(typed) < spelling.threshold < 1.0
