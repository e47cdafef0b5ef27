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
from kwstream.keywords.enrolled.scorer import FUSED, HIDDEN, EnrolledScorer
from kwstream.keywords.enrolled.spelled import MARGIN, SpelledOr, Spelling, agreed_spelling, combined_score, greedy_spelling, spelling_threshold
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
    assert agreed_spelling(["ab c", "ab c", "x", "y"]) == "ab c"  # half of four
    assert agreed_spelling(["nine", "nine", "x", "y", "z"]) is None  # two of five is no majority
    assert agreed_spelling([]) is None


def test_the_spelling_fires_where_it_reaches_its_own_threshold_at_the_keywords():
    """At the keyword's threshold 0.2 and the spelling's 0.4, a reading of 0.4 scores 0.2; the match's score stands
    where it is the higher."""
    assert combined_score(0.1, 0.4, 0.2 / 0.4) == pytest.approx(0.2)
    assert combined_score(0.1, 0.39, 0.5) < 0.2 and combined_score(0.3, 0.39, 0.5) == 0.3
    assert combined_score(0.0, 0.9, 3.0) == 1.0  # a score stays in [0, 1]


def test_the_spellings_threshold_is_stricter_than_a_typed_keywords():
    assert spelling_threshold(0.36) == pytest.approx(0.54) and spelling_threshold(0.8) == 1.0


def test_a_keyword_with_a_spelling_is_found_where_its_takes_do_not_match(tiny_model):
    """``SpelledOr``: a window whose letters read the spelling scores the read, weighted, with the read's frames; the
    other keyword keeps its match."""
    from kwstream.model.encoder import Encoder, EncoderSettings

    encoder = Encoder(EncoderSettings(model=str(tiny_model)))
    rng = np.random.default_rng(1)
    example = rng.standard_normal((5, 8)).astype(np.float32)
    enrolled = EnrolledScorer(["one", "two"], [1, 1], [[example], [example]], [0.3, 0.3])
    text = next(t for t in encoder.tokens if t.isalpha() and len(t) == 1) * 3
    log_probs = np.full((20, len(encoder.tokens)), -8.0)
    log_probs[:, encoder.blank_id] = -0.01
    letter = encoder.tokens.index(text[0])
    log_probs[[5, 7, 9], letter] = -0.01  # the letter three times, blanks between
    window = EncodedFrames(log_probs, {1: rng.standard_normal((20, 8)).astype(np.float32)})
    read = typed_scorer(encoder, [text]).score(log_probs)[0]
    scorer = SpelledOr(enrolled, typed_scorer(encoder, [text]), [Spelling(text, read.score), None], [0.3, 0.3])
    matched = enrolled.score_frames(window)
    got = scorer.score_frames(window)
    assert matched[0].score < 0.3 and got[0] == KeywordMatch(pytest.approx(0.3), read.start_frame, read.end_frame)
    assert got[1] == matched[1]
    assert (scorer.keywords, scorer.layers, scorer.thresholds) == (enrolled.keywords, enrolled.layers, enrolled.thresholds)


def test_a_spelling_round_trips_and_a_bad_one_is_refused(tmp_path):
    store = KeywordStore(tmp_path)
    store.save(dataclasses.replace(_keyword("seven"), kind=FUSED, centre=np.zeros(8, np.float32), spelling=Spelling("seven", 0.36)))
    assert store.load("seven").spelling == Spelling("seven", 0.36)
    metadata = json.loads((tmp_path / "seven" / "keyword.json").read_text())
    assert metadata["format"] == "kwstream-enrolled-2"  # older code reads it, and scores the match alone
    for bad in ("seven", {"text": "", "threshold": 0.3}, {"text": "seven", "threshold": 0}, {"text": "seven"},
                {"text": 7, "threshold": 0.3}):
        (tmp_path / "seven" / "keyword.json").write_text(json.dumps({**metadata, "spelling": bad}))
        with pytest.raises(EnrollmentError, match="'seven' .* is unreadable .*spelling"):
            store.load("seven")
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
    assert keyword.calibration["method"].endswith(f"; its spelling at {keyword.spelling.threshold:g}")
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
def test_enrolling_a_word_that_reads_as_a_common_homophone_warns(tmp_path, capsys):
    """jackson's "two" reads "two": enrollment says so, and warns as typing "two" would ("to", "too")."""
    from kwstream.cli.main import main

    takes = [str(RECORDINGS / f"2_jackson_{i}.wav") for i in range(3)]
    assert main(["enroll", "two", "--from", *takes, "--store", str(tmp_path), "--model", str(BUNDLED)]) == 0
    err = capsys.readouterr().err
    assert "(letter posteriors + layer 3, or read as 'two', threshold" in err
    [warning] = [line for line in err.splitlines() if line.startswith("kwstream: warning:")]
    assert warning.startswith('kwstream: warning: the takes read as \'two\', and "two" sounds like "to" and "too"')
