"""``kwstream eval``: recall, false alarms per hour, latency and DET curves on labelled recordings."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from kwstream.audio.io import audio_info, truncated
from kwstream.cli import options
from kwstream.cli.exit_codes import EXIT_FAILED
from kwstream.cli.tables import figure, print_table
from kwstream.errors import KwstreamError
from kwstream.evaluation.metrics import (Label, StreamRecord, check_label_ends, evaluate, negative_hours, on_recordings,
                                         read_labels, read_transcripts, record_stream, stream_names,
                                         unevaluated)
from kwstream.evaluation.plots import plot_det
from kwstream.keywords.keyword_set import fit_calibration
from kwstream.extras import require
from kwstream.model.encoder import Encoder
from kwstream.stream.pipeline import KeywordPipeline


def cmd_eval(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    target = args.target_fa_per_hour
    if target < 0:
        raise KwstreamError("--target-fa-per-hour must not be negative")
    if args.plot:
        require("matplotlib")
    for option, out in (("--plot", args.plot), ("--calibrate", args.calibrate)):
        if out and not Path(out).parent.is_dir():  # before the model listens for minutes
            raise KwstreamError(f"{option} {out}: no such folder {Path(out).parent}")
    labels = read_labels(args.labels)
    transcripts = read_transcripts(args.transcripts) if args.transcripts else None
    paths = [Path(f) for f in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise KwstreamError(f"no such audio file: {', '.join(missing)}")
    if len({p.stem for p in paths}) != len(paths):
        raise KwstreamError("two recordings share a file stem; labels name streams by stem")
    labels, unknown = on_recordings(labels, paths)
    if unknown:
        options.warn([f"{len(unknown)} label rows name no recording given (stream = a file's stem) and are ignored: "
                      f"{_names(sorted({x.stream for x in unknown}))}"])
    if transcripts is not None:
        names = stream_names(paths)
        strays = sorted(set(transcripts) - set(names))
        if strays:
            options.warn([f"transcripts of {len(strays)} streams name no recording given and are ignored: {_names(strays)}"])
        transcripts = {names[stream]: rows for stream, rows in transcripts.items() if stream in names}
    seconds = {p.stem: audio_info(p).duration for p in paths}  # from the headers, before the model loads
    check_label_ends(labels, seconds, args.labels)
    encoder = Encoder(settings.encoder)
    keywords = options.keyword_set(args, encoder, settings)
    thresholds = keywords.thresholds
    others = unevaluated(labels, list(thresholds))
    if others:
        options.warn([f"{len(others)} label rows are of keywords not evaluated: "
                      f"{_names(sorted({x.keyword for x in others}))}"])
    if args.suggest or args.calibrate:  # before the model listens for minutes
        planned = [StreamRecord(p.stem, seconds[p.stem]) for p in paths]
        check_measurable(planned, labels, list(thresholds), target, "--suggest" if args.suggest else "--calibrate")
    pipeline = KeywordPipeline(keywords, encoder, settings)
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("listening", total=len(paths))
        records = []
        for path in paths:
            records.append(record_stream(path, pipeline))
            progress.advance(task)
        sweep = progress.add_task("sweeping thresholds", total=len(thresholds))
        reports = evaluate(records, labels, thresholds, settings.detector, lambda: progress.advance(sweep), target, transcripts)
    if args.plot:
        plot_det(reports, args.plot, target)
    if args.calibrate:
        fit_calibration({r.keyword: r.threshold_at_target for r in reports}, target,
                        f"{len(paths)} recordings, labels {args.labels}").save(args.calibrate)
    suggestion = ",".join(f"{r.keyword}:{r.threshold_at_target:.2f}" for r in reports if r.threshold_at_target is not None)
    hours = negative_hours(records, labels)
    audio_s = sum(r.duration_s for r in records)
    if args.json:
        print(json.dumps({"model": encoder.name, "audio_s": audio_s, "negative_hours": hours,
                          "target_false_alarms_per_hour": target, "keywords": [asdict(r) for r in reports],
                          "suggested_keywords": suggestion}))
    else:
        at = f"@{target:g}"
        columns = ["keyword", "labels", "thr", "recall", "FA/h", "lat\nmed", "lat\np95", f"thr\n{at}", f"recall\n{at}"]
        rows = [[r.keyword, str(r.labels), f"{r.threshold:.2f}", figure(r.recall, ".3f"),
                 f"{r.false_alarms_per_hour:.2f}", figure(r.latency_median_s, ".2f"), figure(r.latency_p95_s, ".2f"),
                 figure(r.threshold_at_target, ".2f"), figure(r.recall_at_target, ".3f")] for r in reports]
        legend = (f"thr: threshold; FA/h: false alarms per hour; lat: latency from the label's end to the detection, "
                  f"s; {at}: at {target:g} FA/h, the lowest threshold with at most that many, and its recall")
        if transcripts is not None:
            columns.append(f"recall\n{at}\nwithout\nhomoph.")
            for row, r in zip(rows, reports):
                row.append(figure(r.recall_at_target_excluding_homophones, ".3f"))
            legend += ("; without homoph.: the same, not counting false alarms in sentences that say a homophone "
                       "of the keyword (\"hay\" for \"hey\"), which no spotter can tell apart")
        print_table(f"{encoder.name}: {audio_s / 60:.1f} min of audio, {hours:.2f} h without keywords", columns, rows, legend)
        if transcripts is not None:
            print("\nfalse alarms at the chosen thresholds, and what was said there:")
            for r in reports:
                for alarm in r.false_alarm_detections:
                    alike = f"  (homophone {alarm.homophone!r})" if alarm.homophone else ""
                    print(f"  {r.keyword:<12} {alarm.stream} {alarm.start:7.2f}-{alarm.end:.2f} s  score {alarm.score:.2f}  "
                          f"{alarm.said!r}{alike}")
    if args.suggest:
        print(f"--keywords {suggestion}" if suggestion else "no threshold reaches the target", file=sys.stderr if args.json else sys.stdout)
    return EXIT_FAILED if any(truncated(path) for path in paths) else 0  # each was told as it was read


def check_measurable(records: list[StreamRecord], labels: list[Label], keywords: list[str], target: float, option: str) -> None:
    """Raise unless every keyword has at least 1/``target`` hours of audio without it: in less, a
    single false alarm is already over the target, so the threshold picked there means nothing."""
    if target == 0:  # "no false alarm on this audio" needs no length
        return
    needed = 1 / target
    hours, keyword = min((negative_hours(records, labels, k), k) for k in keywords)
    if hours < needed:
        one = f": one false alarm in it is {1 / hours:.0f} per hour" if hours else ""
        raise KwstreamError(f"{option}: {hours:.3g} h of keyword-free audio (without {keyword!r}) cannot measure "
                            f"{target:g} false alarms per hour{one}; at least {needed:.3g} h are needed")


def _names(names: list[str], shown: int = 5) -> str:
    """``names`` for one line: the first few, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
