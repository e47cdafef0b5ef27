"""Metrics on hand-made detections and labels whose answers are known, and `kwstream eval` end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from kwstream.stream.detector import Detection, DetectorSettings, WindowScore
from kwstream.errors import KwstreamError
from kwstream.evaluation.metrics import (FalseAlarm, Label, StreamRecord, evaluate, match, negative_hours, read_labels,
                                 read_transcripts, replay, said_at)
from kwstream.stream.events import ScoredWindow
from kwstream.stream.replay import compared_scores

from conftest import SAMPLE_RATE, SpeechStream


def det(detected_at: float, keyword: str = "stop") -> Detection:
    return Detection(keyword, 0.9, detected_at - 0.5, detected_at - 0.1, detected_at, 0.0)


def test_hits_false_alarms_and_one_hit_per_label():
    labels = [Label("s", "stop", 10.0, 10.5), Label("s", "stop", 20.0, 20.4)]
    detections = [
        det(9.74),  # before start - 0.25: false alarm
        det(10.6),  # hit on the first label, latency 0.1
        det(11.2),  # also within the first label's window, but it is taken: false alarm
        det(21.4),  # end + 1.0 exactly: hit on the second label, latency 1.0
        det(30.0),  # nowhere near a label: false alarm
    ]
    outcome = match(detections, labels)
    assert (outcome.hits, outcome.labels, outcome.false_alarms) == (2, 2, 3)
    assert outcome.latencies == pytest.approx((0.1, 1.0))
    assert outcome.recall == 1.0


def test_a_miss_and_an_early_hit():
    labels = [Label("s", "stop", 5.0, 5.5), Label("s", "stop", 8.0, 8.5)]
    outcome = match([det(4.75)], labels)  # start - 0.25 exactly counts
    assert (outcome.hits, outcome.false_alarms, outcome.recall) == (1, 0, 0.5)
    assert outcome.latencies == pytest.approx((4.75 - 5.5,))


def window(end_s: float, score: float, span: int = 0, start: float | None = None) -> ScoredWindow:
    start = end_s - 0.6 if start is None else start
    return ScoredWindow(end_s - 1.5, end_s, {"stop": WindowScore("stop", score, start, start + 0.4)}, 0.0, span)


REPLAYED = [window(1.0, 0.2), window(1.25, 0.9, start=0.5), window(1.5, 0.9, start=0.5),
            window(4.0, 0.95, span=1, start=3.5), window(4.25, 0.95, span=1, start=3.5)]


def test_replay_applies_the_live_detector_logic():
    settings = DetectorSettings(smoothing_windows=2, refractory_s=0.3, lone_window_margin=math.inf)
    # smoothed: (one window only), 0.55, 0.9 (same occurrence) | new span: (one window only), 0.95
    assert [d.detected_at for d in replay(REPLAYED, "stop", 0.5, settings)] == [1.25, 4.25]
    assert [d.detected_at for d in replay(REPLAYED, "stop", 0.6, settings)] == [1.5, 4.25]
    assert [d.detected_at for d in replay(REPLAYED, "stop", 0.92, settings)] == [4.25]


def test_replay_applies_the_lone_window_margin():
    settings = DetectorSettings(smoothing_windows=2, refractory_s=0.3, lone_window_margin=0.2)
    # compared: 0.0, max(0.55, 0.7), 0.9 | new span: 0.75 (alone), max(0.95, 0.75)
    assert compared_scores(REPLAYED, "stop", settings) == pytest.approx([0.0, 0.7, 0.9, 0.75, 0.95])
    assert [d.detected_at for d in replay(REPLAYED, "stop", 0.6, settings)] == [1.25, 4.0]
    assert [d.detected_at for d in replay(REPLAYED, "stop", 0.8, settings)] == [1.5, 4.25]


def test_det_sweep_points_and_target_threshold():
    # One hour of audio: one labelled stop (hit by the 0.9 window), one false alarm at score 0.7.
    record = StreamRecord("s", 3600.0, [window(10.5, 0.9, start=10.0), window(100.0, 0.7, span=1, start=99.4)])
    labels = [Label("s", "stop", 10.0, 10.4)]
    settings = DetectorSettings(smoothing_windows=1)
    (report,) = evaluate([record], labels, {"stop": 0.5}, settings)
    assert negative_hours([record], labels) == pytest.approx((3600 - 0.4) / 3600)
    assert report.recall == 1.0 and report.false_alarms == 1
    assert report.false_alarms_per_hour == pytest.approx(3600 / 3599.6)
    assert report.threshold_at_target == 0.71  # first grid threshold above the false alarm's score
    assert report.recall_at_target == 1.0
    points = dict(zip(report.det_thresholds, zip(report.det_miss_rate, report.det_false_alarms_per_hour)))
    assert points[0.7][1] > 0.5 and points[0.71] == (0.0, 0.0) and points[0.91] == (1.0, 0.0)
    assert report.latency_median_s == pytest.approx(10.5 - 10.4)


def test_false_alarms_carry_what_was_said_there(tmp_path):
    # The hit (10.0-10.4) is no false alarm; the one at 99.4-99.8 lies inside the second sentence.
    record = StreamRecord("s", 3600.0, [window(10.5, 0.9, start=10.0), window(100.0, 0.7, span=1, start=99.4)])
    labels = [Label("s", "stop", 10.0, 10.4)]
    transcripts = tmp_path / "transcripts.csv"
    transcripts.write_text('stream,start,end,text\ns,9.5,11.0,please stop\ns,98.0,101.0,"it stopped, then"\n')
    (report,) = evaluate([record], labels, {"stop": 0.5}, DetectorSettings(smoothing_windows=1),
                         transcripts=read_transcripts(transcripts))
    (alarm,) = report.false_alarm_detections
    assert alarm == FalseAlarm("s", 99.4, pytest.approx(99.8), 100.0, 0.7, "it stopped, then")
    (without,) = evaluate([record], labels, {"stop": 0.5}, DetectorSettings(smoothing_windows=1))
    assert [a.said for a in without.false_alarm_detections] == [""]


def test_false_alarms_on_a_homophone_are_named_and_left_out_only_of_the_second_recall(tmp_path):
    # "hey" is hit once (10.0-10.4); it fires falsely on "hay" (99.4) and on "they" (200.4), one hour in all.
    def hey(end_s: float, score: float, span: int, start: float) -> ScoredWindow:
        return ScoredWindow(end_s - 1.5, end_s, {"hey": WindowScore("hey", score, start, start + 0.4)}, 0.0, span)

    record = StreamRecord("s", 3600.0, [hey(10.5, 0.9, 0, 10.0), hey(100.0, 0.8, 1, 99.4), hey(201.0, 0.6, 2, 200.4)])
    labels = [Label("s", "hey", 10.0, 10.4)]
    transcripts = tmp_path / "transcripts.csv"
    transcripts.write_text("stream,start,end,text\ns,9.5,11.0,hey you\ns,98.0,101.0,make Hay while\n"
                           "s,199.0,202.0,they said\n")
    (report,) = evaluate([record], labels, {"hey": 0.5}, DetectorSettings(smoothing_windows=1),
                         transcripts=read_transcripts(transcripts))
    assert [(a.said, a.homophone) for a in report.false_alarm_detections] == [("make Hay while", "hay"), ("they said", "")]
    assert report.threshold_at_target == 0.81 and report.recall_at_target == 1.0  # above both false alarms
    assert report.threshold_at_target_excluding_homophones == 0.61  # above "they" only: "hay" is not counted
    assert report.recall_at_target_excluding_homophones == 1.0
    points = dict(zip(report.det_thresholds, zip(report.det_false_alarms_per_hour,
                                                 report.det_false_alarms_per_hour_excluding_homophones)))
    assert points[0.7] == (pytest.approx(3600 / 3599.6), 0.0)
    (without,) = evaluate([record], labels, {"hey": 0.5}, DetectorSettings(smoothing_windows=1))
    assert without.det_false_alarms_per_hour_excluding_homophones == without.det_false_alarms_per_hour


def test_said_at_takes_the_sentence_holding_the_alignment_or_the_nearest():
    rows = [(0.0, 2.0, "one"), (3.0, 5.0, "two")]
    assert said_at(rows, 1.0, 1.4) == "one"
    assert said_at(rows, 1.8, 3.6) == "two"  # middle 2.7, in the pause, nearer the second
    assert said_at(rows, 7.0, 8.0) == "two"
    assert said_at([], 1.0, 2.0) == ""


@pytest.mark.parametrize("reader, what, header, bad_row", [
    (read_labels, "labels", "stream,keyword,start,end", "x,stop,1.0,oops"),
    (read_transcripts, "transcripts", "stream,start,end,text", "x,1.0,oops,hello"),
])
def test_csv_readers_name_the_bad_line_and_the_missing_file(tmp_path, reader, what, header, bad_row):
    bad = tmp_path / f"{what}.csv"
    bad.write_text(f"{header}\n{bad_row}\n")
    with pytest.raises(KwstreamError, match=f"{what}.csv:2"):
        reader(bad)
    with pytest.raises(KwstreamError, match=f"cannot read {what}"):
        reader(tmp_path / "missing.csv")


def test_read_labels(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("stream,keyword,start,end\nx,stop,1.0,1.5\n")
    assert read_labels(good) == [Label("x", "stop", 1.0, 1.5)]


@pytest.mark.slow
def test_eval_end_to_end(tiny_model, speech_stream: SpeechStream, tmp_path):
    talk = speech_stream.write(tmp_path / "talk.wav")
    silence = SpeechStream(speech_stream.audio * 0, []).write(tmp_path / "quiet.wav")
    labels = tmp_path / "labels.csv"
    rows = [f"talk,three,{a / SAMPLE_RATE:.3f},{b / SAMPLE_RATE:.3f}" for a, b in speech_stream.word_spans[:1]]
    labels.write_text("stream,keyword,start,end\n" + "\n".join(rows) + "\n")
    plot = tmp_path / "det.png"

    def run(*extra: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "kwstream", "eval", "--keywords", "three", "--labels", str(labels), "--model",
             str(tiny_model), *extra, str(talk), str(silence)],
            capture_output=True, timeout=300, env={**os.environ, "COLUMNS": "80"},
        )
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    report = json.loads(run("--plot", str(plot), "--json"))
    (three,) = report["keywords"]
    assert three["labels"] == 1 and len(three["det_thresholds"]) == 101
    total_s = 2 * len(speech_stream.audio) / SAMPLE_RATE
    assert report["audio_s"] == pytest.approx(total_s, abs=0.1)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    transcripts = tmp_path / "transcripts.csv"
    transcripts.write_text(f"stream,start,end,text\ntalk,0.0,{total_s / 2:.3f},three words said\n")
    table = run("--transcripts", str(transcripts))  # the same figures, whole, in an 80-column table
    assert "…" not in table and max(map(len, table.splitlines())) <= 80, table
    assert "false alarms at the chosen thresholds" in table
    row = next(line for line in table.splitlines() if line.startswith("│ three "))
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells[:5] == ["three", "1", f"{three['threshold']:.2f}", f"{three['recall']:.3f}",
                         f"{three['false_alarms_per_hour']:.2f}"], table
    assert cells[9] == f"{three['recall_at_target_excluding_homophones']:.3f}", table  # "three" has no homophone


def test_false_alarms_of_a_keyword_are_counted_per_hour_without_it():
    record = StreamRecord("s", 3600.0)
    labels = [Label("s", "stop", 10.0, 1810.0), Label("s", "go", 2000.0, 2900.0)]
    assert negative_hours([record], labels, "stop") == pytest.approx(0.5)
    assert negative_hours([record], labels, "go") == pytest.approx(0.75)
    assert negative_hours([record], labels) == pytest.approx(0.25)
