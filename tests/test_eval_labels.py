"""`kwstream eval`'s labels: read strictly, matched to the recordings and keywords given, and enough
keyword-free audio before --suggest or --calibrate picks a threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from kwstream.cli.exit_codes import EXIT_OK, EXIT_USER_ERROR
from kwstream.cli.main import main
from kwstream.errors import KwstreamError
from kwstream.evaluation.metrics import (Label, StreamRecord, evaluate, negative_hours, on_recordings, read_labels,
                                         unevaluated)
from kwstream.stream.detector import DetectorSettings, WindowScore
from kwstream.stream.events import ScoredWindow

from conftest import ASSET_AUDIO

HEADER = "stream,keyword,start,end\n"
DIGITS = ["0_lucas_1", "3_theo_0", "7_jackson_0"]
"""Zero (0.00-0.68 s), three and seven end to end: 1.36 s at 8 kHz."""


def labels_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def recording(tmp_path: Path, name: str = "talk.flac") -> Path:
    audio = np.concatenate([soundfile.read(ASSET_AUDIO / f"fsdd_{d}.wav", dtype="float32")[0] for d in DIGITS])
    soundfile.write(tmp_path / name, audio, 8000)
    return tmp_path / name


def test_header_names_compare_case_insensitively(tmp_path):
    path = labels_file(tmp_path, "Stream,Keyword,Start,End\ntalk,zero,0.1,0.6\n")
    assert read_labels(path) == [Label("talk", "zero", 0.1, 0.6)]


def test_a_spreadsheets_byte_order_mark_is_no_part_of_the_header_and_audio_is_no_csv(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"talk,zero,0.1,0.6\n")  # Excel's "CSV UTF-8"
    assert read_labels(path) == [Label("talk", "zero", 0.1, 0.6)]
    with pytest.raises(KwstreamError, match="cannot read labels .* as CSV text"):  # a traceback before
        read_labels(ASSET_AUDIO / "fsdd_0_lucas_1.wav")  # the arguments swapped


@pytest.mark.parametrize("text", ["talk,zero,0.1,0.6\n", "", "stream,word,start,end\ntalk,zero,0.1,0.6\n"])
def test_a_missing_or_unknown_header_is_named_at_line_1(tmp_path, text):
    with pytest.raises(KwstreamError, match=r"labels.csv:1: expected the header stream,keyword,start,end"):
        read_labels(labels_file(tmp_path, text))


@pytest.mark.parametrize("row, got", [("talk", 1), ("talk,zero,0.1", 3), ("talk,zero,0.1,0.6,0.9", 5)])
def test_a_row_of_another_length_than_the_header_names_its_line(tmp_path, row, got):
    path = labels_file(tmp_path, f"{HEADER}talk,zero,0.1,0.6\n{row}\n")
    with pytest.raises(KwstreamError, match=rf"labels.csv:3: expected 4 columns \(stream,keyword,start,end\), got {got}"):
        read_labels(path)


@pytest.mark.parametrize("row, problem", [("talk,zero,-0.1,0.6", "negative"), ("talk,zero,nan,0.6", "not a number"),
                                          ("talk,zero,0.6,0.1", "end before start")])
def test_negative_or_reversed_times_name_their_line(tmp_path, row, problem):
    with pytest.raises(KwstreamError, match=f"labels.csv:2: .*{problem}"):
        read_labels(labels_file(tmp_path, f"{HEADER}{row}\n"))


def test_labels_name_a_recording_by_its_stem_or_its_file_name():
    labels = [Label("talk", "zero", 0, 1), Label("talk.flac", "zero", 2, 3), Label("tlak", "zero", 0, 1)]
    found, unknown = on_recordings(labels, [Path("a/talk.flac"), Path("quiet.wav")])
    assert [(x.stream, x.start) for x in found] == [("talk", 0), ("talk", 2)]
    assert unknown == [Label("tlak", "zero", 0, 1)]
    # A stem outranks another recording's file name.
    found, _ = on_recordings([Label("talk.flac", "zero", 0, 1)], [Path("talk.flac"), Path("talk.flac.wav")])
    assert found[0].stream == "talk.flac"


def test_keywords_compare_case_insensitively():
    window = ScoredWindow(9.0, 10.5, {"zero": WindowScore("zero", 0.9, 10.0, 10.4)}, 0.0, 0)
    record = StreamRecord("s", 3600.0, [window])
    labels = [Label("s", "Zero", 10.0, 10.4), Label("s", "seven", 20.0, 20.4)]
    (report,) = evaluate([record], labels, {"zero": 0.5}, DetectorSettings(smoothing_windows=1))
    assert (report.labels, report.recall, report.false_alarms) == (1, 1.0, 0)
    assert negative_hours([record], labels, "zero") == pytest.approx((3600 - 0.4) / 3600)
    assert unevaluated(labels, ["ZERO "]) == [labels[1]]


def run_eval(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["eval", "--keywords", "zero", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_label_past_the_recording_s_end_is_refused_before_the_model_loads(tmp_path, capsys):
    talk = recording(tmp_path)
    # talk.flac is talk; tlak is no recording given: a warning, not an error.
    labels = labels_file(tmp_path, f"{HEADER}tlak,zero,0.0,0.6\ntalk,zero,0.0,0.6\ntalk.flac,zero,1.0,9.5\n")
    status, _, err = run_eval(capsys, "--labels", str(labels), "--model", str(tmp_path / "no-model"), str(talk))
    assert status == EXIT_USER_ERROR
    assert err.splitlines() == [
        "kwstream: 1 label rows name no recording given (stream = a file's stem) and are ignored: tlak",
        f"kwstream: error: {labels}:4: the label ends at 9.5 s, past the end of talk (1.36 s long)",
    ]


def test_suggest_and_calibrate_need_one_false_alarm_s_worth_of_keyword_free_audio(tiny_model, tmp_path, capsys):
    talk = recording(tmp_path)
    labels = labels_file(tmp_path, f"{HEADER}talk,Zero,0.0,0.68\ntalk,seven,0.92,1.36\n")
    common = ["--labels", str(labels), "--model", str(tiny_model), "--threads", "1"]
    status, out, err = run_eval(capsys, *common, "--suggest", str(talk))
    assert status == EXIT_USER_ERROR and out == ""
    assert err.splitlines()[-2:] == [
        "kwstream: 1 label rows are of keywords not evaluated: seven",
        "kwstream: error: --suggest: 0.000188 h of keyword-free audio (without 'zero') cannot measure 0.5 false "
        "alarms per hour: one false alarm in it is 5311 per hour; at least 2 h are needed",
    ]
    # 0.68 s without "zero" can measure 10000 false alarms per hour (one in 0.36 s); "Zero" is zero's label.
    calibration = tmp_path / "calibration.json"
    transcripts = tmp_path / "transcripts.csv"  # a recording named by its file name, as labels may; one stray
    transcripts.write_text("stream,start,end,text\ntalk.flac,0.0,1.36,zero three seven\nother,0.0,1.0,hello\n")
    status, out, err = run_eval(capsys, *common, "--target-fa-per-hour", "10000", "--calibrate", str(calibration),
                                "--transcripts", str(transcripts), "--json", str(talk))
    assert status == EXIT_OK, err
    assert "kwstream: transcripts of 1 streams name no recording given and are ignored: other" in err.splitlines()
    assert json.loads(out)["keywords"][0]["labels"] == 1 and calibration.is_file()
