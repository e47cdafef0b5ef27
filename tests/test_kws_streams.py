"""The keyword-spotting test streams: labels inside the audio, on speech, keyword-free negatives."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import soundfile

from training.kws_streams import EVAL_KEYWORDS, NEAR_MISSES, build, keyword_free

pytestmark = [pytest.mark.slow,  # the training workshop (training/, not installed)
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")]


def test_keyword_free_matches_whole_words_only():
    assert keyword_free("the computers stopped")
    assert not keyword_free("please stop the music")
    assert not keyword_free("call me at seven")
    assert all(keyword_free(word) for word in NEAR_MISSES)


def test_streams_hold_each_keyword_once_at_its_label(tmp_path):
    build(tmp_path, per_keyword=1, negative_minutes=0.2, seed=3)
    for condition in ("clean", "noisy"):
        rows = list(csv.DictReader(open(tmp_path / condition / "labels.csv")))
        assert sorted(r["keyword"] for r in rows) == sorted(EVAL_KEYWORDS)
        for r in rows:
            audio, rate = soundfile.read(tmp_path / condition / f"{r['stream']}.flac", dtype="float32")
            start, end = float(r["start"]), float(r["end"])
            assert 0 < start < end <= len(audio) / rate
            assert 0.1 < end - start < 1.5
            word = audio[int(start * rate) : int(end * rate)]
            assert np.sqrt(np.mean(word**2)) > 0.01  # speech, not a pause
        negatives = [p for p in (tmp_path / condition).glob("neg_*.flac")]
        assert negatives and not any(r["stream"].startswith("neg") for r in rows)
        sentences = list(csv.DictReader(open(tmp_path / condition / "transcripts.csv")))
        for r in rows:  # each keyword lies inside a sentence that says it
            (holder,) = [t for t in sentences if t["stream"] == r["stream"]
                         and float(t["start"]) <= float(r["start"]) < float(r["end"]) <= float(t["end"]) + 0.01]
            assert r["keyword"] in holder["text"].split()
        free = [t["text"] for t in sentences if t["stream"].startswith("neg")]
        assert free and all(keyword_free(text) for text in free)
