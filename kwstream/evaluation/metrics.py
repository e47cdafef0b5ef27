"""Accuracy of the spotter on labelled recordings: recall, false alarms per hour, DET curves.

Each recording is pushed once through a KeywordPipeline (the stages ``listen`` runs, without its
threads), and every window's keyword scores and alignments are recorded. Thresholds are then swept offline by
replaying those windows through the same Detector the live spotter uses (``kwstream.stream.replay``), so every point of the
curve is what ``listen`` would have done at that threshold.

Matching: a detection of a keyword is a hit when it fires between ``HIT_BEFORE_S`` before a label's
start and ``HIT_AFTER_S`` after its end; each label takes at most one hit; every other detection is
a false alarm. A keyword's false alarms are counted per hour of audio in which it is not said.
Given transcripts (rows ``stream,start,end,text``), each false alarm also carries the text that was
being said where it fired, and the keyword's homophone if that sentence says one ("hay" for "hey",
"to" for "two", from ``kwstream.keywords.homophones``). No spotter that hears sounds can tell those
apart, so the report also gives the recall at the target rate with them left out of the count, beside
(never instead of) the figure that counts them. A sentence counts as saying a homophone when the word
occurs in it; whether the alignment lies on that very word is not checked.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.errors import KwstreamError
from kwstream.stream.replay import replay
from kwstream.keywords.homophones import homophones
from kwstream.keywords.keyword_set import keyword_key
from kwstream.stream.detector import Detection, DetectorSettings
from kwstream.stream.events import ScoredWindow
from kwstream.stream.pipeline import KeywordPipeline, run

HIT_BEFORE_S = 0.25
HIT_AFTER_S = 1.0
TARGET_FALSE_ALARMS_PER_HOUR = 0.5
THRESHOLD_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)
LABEL_COLUMNS = ("stream", "keyword", "start", "end")
TRANSCRIPT_COLUMNS = ("stream", "start", "end", "text")
LABEL_END_SLACK_S = 0.05
"""How far past a recording's end a label may end (the rounding of the tool that wrote it)."""


@dataclass(frozen=True)
class Label:
    stream: str
    """The recording's file stem."""
    keyword: str
    start: float
    end: float
    line: int = field(default=0, compare=False, repr=False)
    """Its line in the labels file (0 when not read from one), for errors."""


@dataclass
class StreamRecord:
    """One recording's pass through the pipeline: every scored window, in order."""

    name: str
    duration_s: float
    windows: list[ScoredWindow] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    hits: int
    labels: int
    false_alarms: int
    latencies: tuple[float, ...]
    """Seconds from each hit label's end to its detection."""
    homophone_false_alarms: int = 0
    """Those of ``false_alarms`` in sentences that say a homophone of the keyword (counted in both)."""

    @property
    def recall(self) -> float:
        return self.hits / self.labels if self.labels else float("nan")

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(self.hits + other.hits, self.labels + other.labels, self.false_alarms + other.false_alarms,
                       self.latencies + other.latencies, self.homophone_false_alarms + other.homophone_false_alarms)


NO_OUTCOME = Outcome(0, 0, 0, ())
"""The sum of no outcomes: where totals start."""


@dataclass(frozen=True)
class FalseAlarm:
    stream: str
    start: float
    """Stream seconds of the alignment that fired."""
    end: float
    detected_at: float
    score: float
    said: str = ""
    """The transcript's text where the alignment lies ("" without transcripts)."""
    homophone: str = ""
    """The keyword's homophone that ``said`` holds ("hay" for "hey"), else ""."""


Transcripts = dict[str, list[tuple[float, float, str]]]
"""Per stream, (start s, end s, text) of what was said."""


@dataclass(frozen=True)
class KeywordReport:
    keyword: str
    threshold: float
    labels: int
    recall: float
    false_alarms: int
    false_alarms_per_hour: float
    latency_median_s: float
    latency_p95_s: float
    threshold_at_target: float | None
    """Lowest threshold on the grid with at most the target false alarms per hour (None if none)."""
    recall_at_target: float | None
    det_thresholds: list[float]
    det_miss_rate: list[float]
    det_false_alarms_per_hour: list[float]
    det_false_alarms_per_hour_excluding_homophones: list[float]
    """As ``det_false_alarms_per_hour`` without the false alarms in sentences that say a homophone
    (the same figures without transcripts)."""
    threshold_at_target_excluding_homophones: float | None
    recall_at_target_excluding_homophones: float | None
    false_alarm_detections: list[FalseAlarm] = field(default_factory=list)
    """Every false alarm at ``threshold``."""


def _read_csv(path: str | Path, what: str, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Each row with its line number, keyed by the header's names (compared case-insensitively),
    which must include ``columns``; a row of another length than the header is an error."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's "CSV UTF-8" opens with a BOM
            reader = csv.reader(f)
            lines = [(reader.line_num, row) for row in reader if row]
    except OSError as exc:
        raise KwstreamError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:  # not text (an audio file given as the CSV?)
        raise KwstreamError(f"cannot read {what} {path} as CSV text: {exc}") from None
    expected = ",".join(columns)
    header = [name.strip().lower() for name in lines[0][1]] if lines else []
    if not set(columns) <= set(header):
        got = f"got {','.join(lines[0][1])!r}" if lines else "the file is empty"
        raise KwstreamError(f"{path}:1: expected the header {expected}, {got}")
    rows = []
    for line, row in lines[1:]:
        if len(row) != len(header):
            raise KwstreamError(f"{path}:{line}: expected {len(header)} columns ({','.join(header)}), got {len(row)}")
        rows.append((line, dict(zip(header, row))))
    return rows


def read_transcripts(path: str | Path) -> Transcripts:
    """Read ``stream,start,end,text`` rows (with that header)."""
    transcripts: Transcripts = {}
    for line, row in _read_csv(path, "transcripts", TRANSCRIPT_COLUMNS):
        try:
            transcripts.setdefault(row["stream"], []).append((float(row["start"]), float(row["end"]), row["text"]))
        except ValueError:
            raise KwstreamError(f"{path}:{line}: start and end must be seconds, got {row['start']!r}, {row['end']!r}") from None
    return transcripts


def said_at(rows: Sequence[tuple[float, float, str]], start: float, end: float) -> str:
    """The text of the row that holds the middle of [start, end], else of the nearest row."""
    if not rows:
        return ""
    middle = (start + end) / 2
    return min(rows, key=lambda r: max(r[0] - middle, middle - r[1], 0.0))[2]


def read_labels(path: str | Path) -> list[Label]:
    """Read ``stream,keyword,start,end`` rows (with that header; times in seconds, 0 <= start <= end)."""
    labels = []
    for line, row in _read_csv(path, "labels", LABEL_COLUMNS):
        try:
            start, end = float(row["start"]), float(row["end"])
        except ValueError:
            raise KwstreamError(f"{path}:{line}: start and end must be seconds, got {row['start']!r}, {row['end']!r}") from None
        if not row["stream"].strip() or not row["keyword"].strip():
            raise KwstreamError(f"{path}:{line}: empty stream or keyword")
        if not 0.0 <= start <= end:  # also NaN
            problem = "end before start" if start > end else "a time is negative or not a number"
            raise KwstreamError(f"{path}:{line}: {problem} (start {row['start']}, end {row['end']})")
        labels.append(Label(row["stream"].strip(), row["keyword"].strip(), start, end, line))
    return labels


def stream_names(paths: Sequence[Path]) -> dict[str, str]:
    """What a labels or transcripts row may call each recording, its stem or its file name ("theo.flac"), to its stem."""
    return {p.name: p.stem for p in paths} | {p.stem: p.stem for p in paths}  # a stem outranks a file name


def on_recordings(labels: Sequence[Label], paths: Sequence[Path]) -> tuple[list[Label], list[Label]]:
    """``labels`` that name one of ``paths`` (``stream_names``), with the stem as their stream, and those that name none."""
    stems = stream_names(paths)
    found = [replace(x, stream=stems[x.stream]) for x in labels if x.stream in stems]
    return found, [x for x in labels if x.stream not in stems]


def check_label_ends(labels: Sequence[Label], seconds: dict[str, float], path: str | Path) -> None:
    """Raise for a label that ends past its recording's end: it names the wrong recording, or
    its times are not seconds."""
    for x in labels:
        if x.end > seconds[x.stream] + LABEL_END_SLACK_S:
            raise KwstreamError(f"{path}:{x.line}: the label ends at {x.end:g} s, past the end of {x.stream} "
                                f"({seconds[x.stream]:.2f} s long)")


def unevaluated(labels: Sequence[Label], keywords: Sequence[str]) -> list[Label]:
    """The labels of none of ``keywords``."""
    keys = {keyword_key(k) for k in keywords}
    return [x for x in labels if keyword_key(x.keyword) not in keys]


def record_stream(path: Path, pipeline: KeywordPipeline) -> StreamRecord:
    """One recording through ``pipeline`` (reset first), keeping every scored window."""
    pipeline.reset()
    windows = [e for e in run(pipeline, read_audio(path)) if isinstance(e, ScoredWindow)]
    return StreamRecord(path.stem, pipeline.position / SAMPLE_RATE, windows)


def assign(detections: Sequence[Detection], labels: Sequence[Label]) -> tuple[list[float], list[Detection]]:
    """One keyword's detections in one stream against its labels: the latency of each hit, and the
    detections that hit no label (false alarms)."""
    free = sorted(labels, key=lambda label: label.start)
    latencies, false_alarms = [], []
    for d in sorted(detections, key=lambda d: d.detected_at):
        label = next((x for x in free if x.start - HIT_BEFORE_S <= d.detected_at <= x.end + HIT_AFTER_S), None)
        if label is None:
            false_alarms.append(d)
            continue
        free.remove(label)
        latencies.append(d.detected_at - label.end)
    return latencies, false_alarms


def homophones_said(transcripts: Transcripts, keyword: str) -> Transcripts:
    """``transcripts`` with each row's text replaced by the homophone of ``keyword`` it says ("" if
    none); empty when the keyword has no homophone, so that ``said_at`` finds nothing."""
    alike = {h.word for h in homophones(keyword)}
    if not alike:
        return {}
    return {stream: [(start, end, next((w for w in re.findall(r"[a-z']+", text.lower()) if w in alike), ""))
                     for start, end, text in rows]
            for stream, rows in transcripts.items()}


def match(detections: Sequence[Detection], labels: Sequence[Label],
          homophone_rows: Sequence[tuple[float, float, str]] = ()) -> Outcome:
    """Hits, misses and false alarms of one keyword's detections against its labels in one stream;
    ``homophone_rows`` (one stream's rows of ``homophones_said``) tell which false alarms lie on a homophone."""
    latencies, false_alarms = assign(detections, labels)
    on_homophones = sum(bool(said_at(homophone_rows, d.start, d.end)) for d in false_alarms)
    return Outcome(len(latencies), len(labels), len(false_alarms), tuple(latencies), on_homophones)


def _labels_of(labels_by_stream: dict[str, list[Label]], record: StreamRecord, keyword: str) -> list[Label]:
    return [x for x in labels_by_stream.get(record.name, []) if x.keyword == keyword]


def _outcome(records, labels_by_stream, keyword, threshold, settings, homophone_rows: Transcripts) -> Outcome:
    return sum((match(replay(record.windows, keyword, threshold, settings), _labels_of(labels_by_stream, record, keyword),
                      homophone_rows.get(record.name, ()))
                for record in records), NO_OUTCOME)


def _at_threshold(records, labels_by_stream, keyword, threshold, settings,
                  transcripts: Transcripts, homophone_rows: Transcripts) -> tuple[Outcome, list[FalseAlarm]]:
    """The outcome at the chosen threshold and its false alarms, each stream replayed once."""
    total, alarms = NO_OUTCOME, []
    for record in records:
        labels = _labels_of(labels_by_stream, record, keyword)
        detections = replay(record.windows, keyword, threshold, settings)
        alike = homophone_rows.get(record.name, ())
        rows = transcripts.get(record.name, [])
        latencies, false_alarms = assign(detections, labels)
        found = [FalseAlarm(record.name, d.start, d.end, d.detected_at, d.score, said_at(rows, d.start, d.end),
                            said_at(alike, d.start, d.end)) for d in false_alarms]
        total += Outcome(len(latencies), len(labels), len(found), tuple(latencies), sum(bool(a.homophone) for a in found))
        alarms += found
    return total, alarms


def negative_hours(records: Sequence[StreamRecord], labels: Sequence[Label], keyword: str | None = None) -> float:
    """Hours of audio outside the labels of ``keyword`` (of every keyword when None): the time in
    which a detection of it can only be a false alarm."""
    labelled = sum(x.end - x.start for x in labels
                   if any(r.name == x.stream for r in records) and (keyword is None or keyword_key(keyword) == keyword_key(x.keyword)))
    return max(0.0, sum(r.duration_s for r in records) - labelled) / 3600


def _at_target(sweep: Sequence[Outcome], rates: Sequence[float], limit: float) -> tuple[float | None, float | None]:
    """The lowest grid threshold whose false-alarm rate is at most ``limit``, and its recall (None, None if none)."""
    i = next((i for i, rate in enumerate(rates) if rate <= limit), None)
    return (None, None) if i is None else (float(THRESHOLD_GRID[i]), sweep[i].recall)


def evaluate(
    records: Sequence[StreamRecord],
    labels: Sequence[Label],
    thresholds: dict[str, float],
    settings: DetectorSettings = DetectorSettings(),
    progress: Callable[[], None] | None = None,
    target_false_alarms_per_hour: float = TARGET_FALSE_ALARMS_PER_HOUR,
    transcripts: Transcripts | None = None,
) -> list[KeywordReport]:
    """Per-keyword report at the chosen thresholds (with each false alarm, and what was said there
    when ``transcripts`` are given), plus the whole DET sweep."""
    spelled = {keyword_key(k): k for k in thresholds}
    by_stream: dict[str, list[Label]] = {}
    for label in labels:  # each keyword spelled as evaluated, to compare exactly below
        by_stream.setdefault(label.stream, []).append(replace(label, keyword=spelled.get(keyword_key(label.keyword), label.keyword)))
    reports = []
    for keyword, chosen in thresholds.items():
        hours = negative_hours(records, labels, keyword)
        per_hour = (lambda n, hours=hours: n / hours) if hours > 0 else (lambda n: float("inf") if n else 0.0)
        alike = homophones_said(transcripts or {}, keyword)
        at, false_alarms = _at_threshold(records, by_stream, keyword, chosen, settings, transcripts or {}, alike)
        sweep = [_outcome(records, by_stream, keyword, float(t), settings, alike) for t in THRESHOLD_GRID]
        fa_rates = [per_hour(o.false_alarms) for o in sweep]
        fa_rates_excluding = [per_hour(o.false_alarms - o.homophone_false_alarms) for o in sweep]
        threshold_at_target, recall_at_target = _at_target(sweep, fa_rates, target_false_alarms_per_hour)
        threshold_excluding, recall_excluding = _at_target(sweep, fa_rates_excluding, target_false_alarms_per_hour)
        latencies = sorted(at.latencies)
        reports.append(KeywordReport(
            keyword=keyword, threshold=chosen, labels=at.labels, recall=at.recall, false_alarms=at.false_alarms,
            false_alarms_per_hour=per_hour(at.false_alarms),
            latency_median_s=statistics.median(latencies) if latencies else float("nan"),
            latency_p95_s=float(np.percentile(latencies, 95)) if latencies else float("nan"),
            threshold_at_target=threshold_at_target,
            recall_at_target=recall_at_target,
            det_thresholds=[float(t) for t in THRESHOLD_GRID],
            det_miss_rate=[1 - o.recall if o.labels else float("nan") for o in sweep],
            det_false_alarms_per_hour=fa_rates,
            det_false_alarms_per_hour_excluding_homophones=fa_rates_excluding,
            threshold_at_target_excluding_homophones=threshold_excluding,
            recall_at_target_excluding_homophones=recall_excluding,
            false_alarm_detections=false_alarms,
        ))
        if progress:
            progress()
    return reports
