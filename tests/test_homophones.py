"""Warnings about keywords that sound like common words, from the shipped table."""

from __future__ import annotations

import json
import logging

import pytest

from kwstream.assets import DEMO_AUDIO
from kwstream.audio.sources import AudioFile
from kwstream.keywords.homophones import TABLE_PATH, WARN_PER_HOUR, homophone_warning, homophones, spellings
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.spotter import Spotter


def test_shipped_table_knows_the_digits_that_sound_like_function_words():
    assert [h.word for h in homophones("two")][:2] == ["to", "too"]
    assert "for" in [h.word for h in homophones("Four")]
    assert [h.word for h in homophones("one")] == ["won"]
    assert homophones("stop") == [] and homophones("computer") == []
    assert homophones("hey computer") == []  # phrases: no single word sounds like them


def test_warning_only_where_the_homophones_are_said_often():
    warning = homophone_warning("two")
    assert warning and '"to" and "too"' in warning and "tu" not in warning.replace('"too"', "")
    assert homophones("hey")[0].word == "hay" and homophones("hey")[0].per_hour < WARN_PER_HOUR
    for quiet in ("hey", "eight", "stop", "lights", "hey computer"):
        assert homophone_warning(quiet) is None, quiet


def test_a_keyword_is_also_spelled_as_its_rare_homophones_never_as_its_common_ones():
    assert spellings("hey") == ["hey", "hay"]
    assert spellings("Hey  Jarvis") == ["Hey Jarvis", "hay Jarvis"]  # each word of a phrase in turn
    assert spellings("two") == ["two", "tu", "tue"]  # not "to" or "too": they are warned about instead
    assert spellings("one") == ["one"] and spellings("stop") == ["stop"]


def test_a_spotter_logs_the_warnings_of_keywords_it_was_given_by_name_once(tiny_model, caplog):
    encoder = Encoder(EncoderSettings(model=str(tiny_model)))
    source = AudioFile(DEMO_AUDIO, realtime=False)
    def spotters_warnings() -> list[str]:  # not the exporter's, when the tiny model's export is first made here
        return [r.getMessage() for r in caplog.records if r.name == "kwstream.spotter"]

    with caplog.at_level(logging.WARNING, logger="kwstream"):
        Spotter(["four", "stop"], encoder=encoder, source=source)
        assert spotters_warnings() == [homophone_warning("four")]
        caplog.clear()
        Spotter(KeywordSet(encoder, ["four", "stop"]), encoder=encoder, source=source)  # the caller shows the set's own
    assert not spotters_warnings()


@pytest.mark.slow  # the training workshop's builder (training/homophones.py)
def test_the_shipped_table_is_what_the_builder_builds():
    from training.homophones import build_table

    shipped = json.loads(TABLE_PATH.read_text())
    about = shipped["about"]
    assert build_table(about["top_words"], about["min_zipf"]) == shipped["homophones"]
