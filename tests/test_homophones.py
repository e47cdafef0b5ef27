"""Warnings about keywords that sound like common words, from the shipped table."""

from __future__ import annotations

import json
import logging

import pytest

from kwstream.keywords.homophones import (
    TABLE_PATH, WARN_PER_HOUR, homophone_warning, homophones, warn_about_homophones,
)


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


def test_logged_once_per_keyword(caplog):
    warn_about_homophones.cache_clear()
    with caplog.at_level(logging.WARNING, logger="kwstream"):
        for _ in range(3):
            warn_about_homophones("four")
            warn_about_homophones("stop")
    assert [r.getMessage() for r in caplog.records] == [homophone_warning("four")]


@pytest.mark.slow  # the training workshop's builder (training/homophones.py)
def test_the_shipped_table_is_what_the_builder_builds():
    from training.homophones import build_table

    shipped = json.loads(TABLE_PATH.read_text())
    about = shipped["about"]
    assert build_table(about["top_words"], about["min_zipf"]) == shipped["homophones"]
