"""Digit test streams from real FSDD recordings: each label sits on its own recording, exclusions hold."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile

from kwstream.errors import KwstreamError
from kwstream.audio.io import read_audio
from training.digit_streams import DEFAULT_FSDD_DIR, StreamSettings, build, main, parse_indices
from training.texts import DIGITS

pytestmark = [pytest.mark.slow,  # the training workshop (training/, not installed)
              pytest.mark.skipif(not (DEFAULT_FSDD_DIR / "recordings").is_dir(), reason="needs ../shared/data/fsdd")]


def test_parse_indices():
    assert parse_indices("0-2,7") == {0, 1, 2, 7}
    assert parse_indices("") == set()
    with pytest.raises(KwstreamError):
        parse_indices("3-1")
    with pytest.raises(KwstreamError):
        parse_indices("a")


def test_each_label_holds_its_recording_and_excluded_indices_never_appear(tmp_path):
    # indices 0-3 allowed, 0-2 excluded: every clip must be recording 3 of its digit
    [path] = build(DEFAULT_FSDD_DIR, tmp_path, ["theo"], StreamSettings(per_digit=1, seed=1), parse_indices("0-3"), {0, 1, 2})
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000 and audio.ndim == 1
    rows = list(csv.DictReader(open(tmp_path / "labels.csv")))
    assert sorted(r["keyword"] for r in rows) == sorted(DIGITS) and {r["stream"] for r in rows} == {"theo"}
    starts = [float(r["start"]) for r in rows]
    assert starts == sorted(starts)
    for r in rows:
        clip = read_audio(DEFAULT_FSDD_DIR / "recordings" / f"{DIGITS.index(r['keyword'])}_theo_3.wav")
        start = round(float(r["start"]) * rate)
        placed = audio[start:start + len(clip)]
        assert np.corrcoef(placed, clip)[0, 1] > 0.98
    gaps = np.array(starts[1:]) - np.array([float(r["end"]) for r in rows[:-1]])
    assert np.all((gaps > 0.29) & (gaps < 1.21))
    assert 1e-5 < np.sqrt(np.mean(audio[: int(starts[0] * rate) - 10] ** 2)) < 1e-2  # a faint floor, not silence


def test_too_few_recordings_is_a_clear_error(tmp_path, capsys):
    assert main(["--speakers", "theo", "--per-digit", "2", "--indices", "0-3", "--exclude-index", "0-2",
                 "--out", str(tmp_path / "x")]) == 2
    assert "fewer than --per-digit 2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_fsdd_layout_takes_the_folder_digit_streams_takes(tmp_path, capsys):
    from training import fsdd_layout

    recordings = tmp_path / "fsdd" / "recordings"
    recordings.mkdir(parents=True)
    soundfile.write(recordings / "0_theo_0.wav", np.zeros(800, np.float32), 8000)
    layout = ["--out", str(tmp_path / "out"), "--speakers", "theo,nobody"]
    assert fsdd_layout.main(["--fsdd", str(tmp_path / "fsdd"), *layout]) == 2
    assert "no FSDD recordings of speaker(s) nobody" in capsys.readouterr().err  # theo's was found: the folder is right
    assert fsdd_layout.main(["--fsdd", str(recordings), *layout]) == 2
    assert f"no FSDD recordings folder in {recordings}" in capsys.readouterr().err
    with pytest.raises(KwstreamError, match="no FSDD recordings folder"):
        build(recordings, tmp_path / "streams", ["theo"])
