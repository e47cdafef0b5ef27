"""The ``kwstream`` command: ``listen`` for keywords, list ``devices``.

User mistakes (a missing file, an unknown device or model, an unspellable keyword) end with one
line on stderr and exit status 2, never a traceback. Detections go to stdout, one line each, as
text or as JSON; notices and the closing summary go to stderr, so stdout stays machine-readable.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from kwstream.evaluation.bench import WORDS as BENCH_WORDS
from kwstream.audio.sources import AudioFile, AudioSource, Microphone, RawStdin, list_input_devices
from kwstream.stream.detector import Detection, DetectorSettings
from kwstream.model.encoder import AUTO_MODEL, BACKENDS, Encoder, EncoderSettings
from kwstream.errors import KwstreamError
from kwstream.evaluation.metrics import TARGET_FALSE_ALARMS_PER_HOUR
from kwstream.stream.events import Level, ScoredWindow, VoiceActivity
from kwstream.keywords.base import KeywordScorer
from kwstream.spotter import Keyword, Spotter, SpotterSettings, SpotterStats, keyword_thresholds
from kwstream.cli.tables import figure, print_table
from kwstream.stream.vad import VadSettings

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger("kwstream")


def _unit_interval(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _positive_ms(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of milliseconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log details (and tracebacks of callback errors)")
    pipeline = argparse.ArgumentParser(add_help=False)
    pipeline.add_argument("--model", default=AUTO_MODEL, help="hub id or local save_pretrained directory (default: auto)")
    pipeline.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"], help="where the model runs")
    pipeline.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's choice)")
    pipeline.add_argument("--int8", action="store_true", help="quantise the model's linear layers to int8 (CPU; faster)")
    pipeline.add_argument("--backend", choices=BACKENDS, default=EncoderSettings.backend,
                          help="torch, or onnx: the same model exported once and run by ONNX Runtime (CPU; faster)")
    pipeline.add_argument("--threshold", type=_unit_interval,
                          help="threshold in [0, 1] for every keyword (default: the model's calibrated one by keyword length, else 0.5)")
    pipeline.add_argument("--window-ms", type=_positive_ms, default=int(SpotterSettings.window_s * 1000), help="encoder window length")
    pipeline.add_argument("--hop-ms", type=_positive_ms, default=int(SpotterSettings.hop_s * 1000), help="step between windows")
    pipeline.add_argument("--left-context-ms", type=_positive_ms, default=int(SpotterSettings.left_context_s * 1000),
                          help="audio before each step's new frames that they attend to")
    pipeline.add_argument("--right-context-ms", type=_positive_ms, default=int(SpotterSettings.right_context_s * 1000),
                          help="audio after a frame before its encoding is final")
    pipeline.add_argument("--vad-aggressiveness", type=int, choices=[0, 1, 2, 3], default=VadSettings.aggressiveness, help="0 keeps most audio, 3 drops most non-speech")
    pipeline.add_argument("--no-vad", action="store_true", help="encode all audio, not only voiced spans")
    pipeline.add_argument("--classifier", action="append", default=[], metavar="HEAD",
                          help="a head from `kwstream train` (for the same --model); spots its keywords; repeatable")
    pipeline.add_argument("--enrolled", action="append", default=[], metavar="NAME[:T]",
                          help="a keyword from `kwstream enroll` (same --model), optionally with a threshold; repeatable")
    pipeline.add_argument("--store", metavar="DIR", help="enrolled keywords' directory (default: the user data dir, see `kwstream keywords`)")

    parser = argparse.ArgumentParser(prog="kwstream", description="Real-time keyword spotting with wav2vec 2.0.")
    commands = parser.add_subparsers(dest="command", required=True)

    listen = commands.add_parser("listen", parents=[common, pipeline], help="spot keywords in the microphone or a recording")
    listen.add_argument(
        "--keywords", default="", metavar="KW[:T],...",
        help="comma-separated keywords, each with an optional threshold: hey:0.8,stop,'hey computer'",
    )
    source = listen.add_mutually_exclusive_group()
    source.add_argument("--file", metavar="PATH", help="a recording (WAV, FLAC, OGG, any rate) or - for raw 16 kHz s16le stdin")
    source.add_argument("--input-device", metavar="DEV", help="input device index or name (see `kwstream devices`)")
    listen.add_argument("--fast", action="store_true", help="with --file: run as fast as possible, not in real time")
    listen.add_argument("--json", action="store_true", help="one JSON object per detection on stdout")
    listen.add_argument("--events", action="store_true",
                        help="with --json: also every level (50 ms), voice on/off and scored window, each with a type")
    listen.add_argument(
        "--dashboard", action="store_true",
        help="live full-screen view: levels, VAD, scores, detections; keys q p tab + - (needs a terminal)",
    )

    commands.add_parser("devices", parents=[common], help="list audio input devices")

    enroll = commands.add_parser("enroll", parents=[common, pipeline], help="store a keyword from a few spoken examples")
    enroll.add_argument("name", metavar="NAME", help="the keyword's name (letters, digits, _ or -)")
    examples = enroll.add_mutually_exclusive_group(required=True)
    examples.add_argument("--from", dest="files", nargs="+", metavar="FILE", help="recordings of the keyword, one example each (3+)")
    examples.add_argument("--record", type=int, metavar="N", help="record N examples from the microphone (3+)")
    enroll.add_argument("--input-device", metavar="DEV", help="with --record: input device index or name")
    enroll.add_argument("--negatives", nargs="+", default=[], metavar="FILE",
                        help="keyword-free speech to calibrate the threshold against")
    enroll.add_argument("--layer", type=int, help="encoder layer of the features (default: chosen for the model)")
    enroll.add_argument("--replace", action="store_true", help="overwrite a keyword of the same name")

    keywords_cmd = commands.add_parser("keywords", parents=[common], help="list or remove enrolled keywords")
    keywords_cmd.add_argument("--remove", metavar="NAME", help="delete this enrolled keyword")
    keywords_cmd.add_argument("--store", metavar="DIR", help="enrolled keywords' directory (default: the user data dir)")

    evaluate = commands.add_parser("eval", parents=[common, pipeline], help="recall, false alarms per hour and DET curves on labelled recordings")
    evaluate.add_argument("--keywords", default="", metavar="KW[:T],...", help="typed keywords to evaluate, with optional thresholds")
    evaluate.add_argument("--labels", required=True, metavar="CSV", help="rows stream,keyword,start,end (stream = file stem, seconds)")
    evaluate.add_argument("--transcripts", metavar="CSV",
                          help="rows stream,start,end,text of what was said: list every false alarm with the text it fired on")
    evaluate.add_argument("--plot", metavar="PNG", help="write DET curves here")
    evaluate.add_argument("--json", action="store_true", help="the full report as one JSON object")
    evaluate.add_argument("--suggest", action="store_true", help="print --keywords with the thresholds that give 0.5 false alarms per hour")
    evaluate.add_argument("--target-fa-per-hour", type=float, default=TARGET_FALSE_ALARMS_PER_HOUR, metavar="RATE",
                          help=f"false alarms per hour that --suggest and --calibrate aim for (default {TARGET_FALSE_ALARMS_PER_HOUR})")
    evaluate.add_argument("--calibrate", metavar="JSON", help="write per-length default thresholds (a model's kwstream.json) from this run")
    evaluate.add_argument("files", nargs="+", metavar="FILE", help="recordings; files without label rows are keyword-free")

    bench = commands.add_parser("bench", parents=[common], help="measure CPU cost per second of speech and silence")
    model = bench.add_mutually_exclusive_group()
    model.add_argument("--model", default=AUTO_MODEL, help="hub id or local save_pretrained directory (default: auto)")
    model.add_argument("--random", choices=["tiny", "base"], help="a random-weight model of this size instead (cost only)")
    bench.add_argument("--keywords", default=",".join(BENCH_WORDS.values()), metavar="KW,...",
                       help="keywords scored in each window (default: the words spoken in the speech stream, for latency)")
    bench.add_argument("--seconds", type=float, default=30.0, help="length of each test stream")
    bench.add_argument("--repeats", type=int, default=3, help="runs per stream; medians are reported")
    bench.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    bench.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's choice)")
    bench.add_argument("--int8", action="store_true", help="quantise the model's linear layers to int8")
    bench.add_argument("--backend", choices=BACKENDS, default=EncoderSettings.backend, help="torch or onnx (ONNX Runtime)")
    bench.add_argument("--window-ms", type=_positive_ms, default=int(SpotterSettings.window_s * 1000))
    bench.add_argument("--hop-ms", type=_positive_ms, default=int(SpotterSettings.hop_s * 1000))
    bench.add_argument("--left-context-ms", type=_positive_ms, default=int(SpotterSettings.left_context_s * 1000))
    bench.add_argument("--right-context-ms", type=_positive_ms, default=int(SpotterSettings.right_context_s * 1000))
    bench.add_argument("--json", action="store_true", help="results as one JSON object")

    train = commands.add_parser("train", parents=[common], help="train a keyword classifier head on a Speech Commands layout")
    train.add_argument("--data", required=True, metavar="DIR", help="one folder per keyword, _unknown_ and _background_noise_")
    train.add_argument("--out", required=True, metavar="HEAD", help="head file to write (e.g. head.pt)")
    train.add_argument("--model", default=AUTO_MODEL, help="hub id or local save_pretrained directory (default: auto)")
    train.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    train.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--layer", type=int, help="encoder layer the head reads (default: top for CTC models, 2/3 up otherwise)")
    train.add_argument("--unfreeze", type=int, default=0, metavar="N", help="also train the top N encoder blocks (default 0)")
    train.add_argument("--epochs", type=_positive_int, default=30)
    train.add_argument("--copies", type=int, default=2, help="noisy, time-shifted copies per training clip (default 2)")
    train.add_argument("--val-percent", type=float, default=10.0, help="share of speakers held out by name hash (default 10)")
    train.add_argument("--val-speakers", default="", metavar="S,...", help="hold out exactly these speakers instead")
    train.add_argument("--cache", metavar="DIR", help="feature cache (default: ~/.cache/kwstream/classifier-features)")
    train.add_argument("--plot", metavar="PNG", help="confusion matrix image (default: HEAD.confusion.png)")
    train.add_argument("--json", action="store_true", help="the report as one JSON object")
    return parser


def parse_keywords(spec: str) -> list[Keyword]:
    return [Keyword.parse(part) for part in spec.split(",") if part.strip()]


def _scorers(args: argparse.Namespace, encoder: Encoder) -> list[KeywordScorer]:
    """The keyword scorers besides typed keywords that the command line names, checked against
    ``encoder``: enrolled keywords (--enrolled) and trained classifiers (--classifier)."""
    scorers: list[KeywordScorer] = []
    if args.classifier:
        from kwstream.keywords.classifier.head import ClassifierScorer

        scorers += [ClassifierScorer.load(path, encoder) for path in args.classifier]
    if args.enrolled:
        from kwstream.keywords.enrolled.store import KeywordStore, load_scorer

        scorers.append(load_scorer(args.enrolled, KeywordStore(args.store), encoder))
    return scorers


def _own_thresholds(args: argparse.Namespace) -> dict[str, float]:
    """Thresholds the user gave with ``--enrolled NAME:T``: they outrank every default."""
    from kwstream.keywords.enrolled.store import parse_enrolled

    return {name: t for name, t in map(parse_enrolled, args.enrolled) if t is not None}


def _keywords_and_scorers(args: argparse.Namespace, encoder: Encoder) -> tuple[list[Keyword], list[KeywordScorer]]:
    keywords = parse_keywords(args.keywords)
    scorers = _scorers(args, encoder)
    if not keywords and not scorers:
        raise KwstreamError("no keywords given: pass e.g. --keywords hey,stop")
    return keywords, scorers


def _settings(args: argparse.Namespace) -> SpotterSettings:
    try:
        return SpotterSettings(
            encoder=EncoderSettings(model=args.model, device=args.device, threads=args.threads, int8=args.int8,
                                    backend=args.backend),
            vad=VadSettings(enabled=not args.no_vad, aggressiveness=args.vad_aggressiveness),
            detector=DetectorSettings(threshold=args.threshold),
            window_s=args.window_ms / 1000,
            hop_s=args.hop_ms / 1000,
            left_context_s=args.left_context_ms / 1000,
            right_context_s=args.right_context_ms / 1000,
        )
    except ValueError as exc:
        raise KwstreamError(str(exc)) from None


def _source(args: argparse.Namespace) -> AudioSource:
    """The input named on the command line, checked before any model loads."""
    if args.fast and not args.file:
        raise KwstreamError("--fast needs --file")
    if args.file == "-":
        source = RawStdin(realtime=not args.fast)
    elif args.file:
        source = AudioFile(args.file, realtime=not args.fast)
    else:
        source = Microphone(args.input_device)
    source.check()
    return source


def format_detection(d: Detection) -> str:
    minutes, seconds = divmod(d.detected_at, 60)
    return (
        f"[{int(minutes):02d}:{seconds:05.2f}] {d.keyword:<14} score {d.score:.2f}  "
        f"spoken {d.start:.2f}-{d.end:.2f} s  latency {d.latency:.2f} s"
    )


EVENT_TYPES = {Detection: "detection", Level: "level", VoiceActivity: "voice", ScoredWindow: "window"}


def _rounded(value: object, key: str = "") -> object:
    if isinstance(value, float) and key != "wall_time":
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def event_json(event: object) -> str:
    """One JSON line for a Detection or any other spotter event, with its ``type``."""
    record = {"type": EVENT_TYPES[type(event)], **asdict(event)}
    if isinstance(event, Detection):
        record["latency"] = event.latency
    return json.dumps(_rounded(record))


def _summary(stats: SpotterStats) -> str:
    voiced = 100 * stats.voiced_s / stats.audio_s if stats.audio_s else 0.0
    text = (
        f"{stats.detections} detection(s) in {stats.audio_s:.1f} s of audio ({voiced:.0f}% voiced, "
        f"{stats.windows} windows, real-time factor {stats.real_time_factor:.3f})"
    )
    losses = [
        f"{stats.overrun_samples} samples lost to overrun" if stats.overrun_samples else "",
        f"{stats.dropped_frames} input overflows" if stats.dropped_frames else "",
        f"{stats.window_errors} failed windows" if stats.window_errors else "",
        f"{stats.callback_errors} callback errors" if stats.callback_errors else "",
    ]
    return "; ".join([text] + [x for x in losses if x])


def cmd_listen(args: argparse.Namespace) -> int:
    settings = _settings(args)
    source = _source(args)
    if args.events and not args.json:
        raise KwstreamError("--events needs --json")
    if args.dashboard and args.json:
        raise KwstreamError("--dashboard and --json cannot be combined: choose the live view or JSON lines")
    encoder = Encoder(settings.encoder)
    keywords, scorers = _keywords_and_scorers(args, encoder)
    make = functools.partial(Spotter, keywords, scorers=scorers, thresholds=_own_thresholds(args), source=source,
                             settings=settings, encoder=encoder)
    if args.dashboard:
        from kwstream.cli.dashboard import DashboardState, dashboard_unavailable, run_dashboard

        names = [k.text for k in keywords] + [k for scorer in scorers for k in scorer.keywords]
        reason = dashboard_unavailable(len(names))
        if reason is None:
            state = DashboardState(names)
            spotter = make(on_event=state.apply)
            spotter.start()
            return run_dashboard(spotter, source, state)
        print(f"kwstream: no dashboard: {reason}; printing detections line by line", file=sys.stderr, flush=True)
    emit = event_json if args.json else format_detection

    def output(item: object) -> None:
        try:
            print(emit(item), flush=True)
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly
            sys.stdout = open(os.devnull, "w")
            source.stop()

    spotter = make(on_event=output) if args.events else make(output)
    spotter.start()
    log.info("model %s (%.1f M parameters) on %s", spotter.encoder.name, spotter.encoder.parameters / 1e6, settings.encoder.device)
    print(
        f"kwstream: listening to {source.name} for {', '.join(spotter.keywords)}"
        + ("" if args.file else " (Ctrl-C to stop)"),
        file=sys.stderr, flush=True,
    )
    interrupted = False
    try:
        while not spotter.wait(timeout=0.2):
            pass
    except KeyboardInterrupt:
        interrupted = True
    spotter.stop()
    print(f"kwstream: {_summary(spotter.stats)}", file=sys.stderr)
    if source.error:
        print(f"kwstream: error: {source.error}", file=sys.stderr)
        return 1
    return EXIT_INTERRUPTED if interrupted else 0


def cmd_devices(args: argparse.Namespace) -> int:
    devices = list_input_devices()
    if not devices:
        raise KwstreamError("no input devices found; read a recording with `kwstream listen --file`")
    from kwstream.audio.sources import import_sounddevice

    default_input = import_sounddevice().default.device[0]
    for d in devices:
        mark = "*" if d["index"] == default_input else " "
        print(f"{mark}{d['index']:>3}  {d['name']:<40} {d['max_input_channels']:>2} ch  {d['default_samplerate']:>7.0f} Hz")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from kwstream.keywords.calibration import fit_calibration
    from kwstream.evaluation.metrics import evaluate, negative_hours, plot_det, read_labels, read_transcripts, record_stream

    settings = _settings(args)
    target = args.target_fa_per_hour
    if target < 0:
        raise KwstreamError("--target-fa-per-hour must not be negative")
    labels = read_labels(args.labels)
    transcripts = read_transcripts(args.transcripts) if args.transcripts else None
    paths = [Path(f) for f in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise KwstreamError(f"no such audio file: {', '.join(missing)}")
    if len({p.stem for p in paths}) != len(paths):
        raise KwstreamError("two recordings share a file stem; labels name streams by stem")
    unknown = sorted({x.stream for x in labels} - {p.stem for p in paths})
    if unknown:
        print(f"kwstream: labels of streams not given as files are ignored: {', '.join(unknown)}", file=sys.stderr)
    encoder = Encoder(settings.encoder)
    keywords, scorers = _keywords_and_scorers(args, encoder)
    texts = [k.text for k in keywords]
    thresholds = keyword_thresholds(keywords, scorers, _own_thresholds(args), settings.detector.threshold,
                                    encoder.calibration)
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("listening", total=len(paths))
        records = []
        for path in paths:
            records.append(record_stream(path, texts, encoder, settings, scorers))
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
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from kwstream.evaluation.bench import bench, random_model

    if args.seconds <= 0 or args.repeats < 1:
        raise KwstreamError("--seconds must be positive and --repeats at least 1")
    args.model = random_model(args.random) if args.random else args.model
    args.no_vad, args.vad_aggressiveness, args.threshold = False, VadSettings.aggressiveness, None
    settings = _settings(args)
    keywords = [k.text for k in parse_keywords(args.keywords)]
    encoder = Encoder(settings.encoder)
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=2 * args.repeats)
        results = bench(encoder, keywords, settings, args.seconds, args.repeats, lambda: progress.advance(task))
    about = {"model": encoder.name, "parameters_m": round(encoder.parameters / 1e6, 2), "device": args.device,
             "threads": args.threads, "int8": args.int8, "backend": args.backend, "keywords": keywords, "window_s": settings.window_s, "hop_s": settings.hop_s,
             "left_context_s": settings.left_context_s, "right_context_s": settings.right_context_s}
    if args.json:
        print(json.dumps({**about, "results": [asdict(r) for r in results]}))
        return 0
    if args.random:
        console.print("random weights: cost figures only; detections and latency mean nothing")
    metrics = (
        ("audio s", lambda r: f"{r.audio_s:.0f}"),
        ("CPU s per audio s", lambda r: f"{r.cpu_per_audio_s:.4f}"),
        ("real-time factor", lambda r: f"{r.real_time_factor:.4f}"),
        ("ms per window", lambda r: f"{r.window_ms:.1f}"),
        ("windows", lambda r: str(r.windows)),
        ("encoded ×", lambda r: f"{r.encoded_per_audio_s:.2f}"),
        ("keywords found", lambda r: f"{r.detected}/{r.words}"),
        ("false alarms", lambda r: str(r.false_alarms)),
        ("latency median s", lambda r: figure(r.latency_median_s, ".2f")),
        ("latency p95 s", lambda r: figure(r.latency_p95_s, ".2f")),
        ("peak memory MB", lambda r: f"{r.peak_memory_mb:.0f}"),
    )
    print_table(f"{encoder.name} ({about['parameters_m']} M parameters, {args.device}), medians of {args.repeats}",
                ["", *(r.stream for r in results)], [[label, *map(cell, results)] for label, cell in metrics],
                "encoded ×: audio seconds the transformer computes per stream second; latency: from the end of a "
                "spoken keyword to its detection; memory: the whole process's peak resident size")
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from kwstream.keywords.enrolled.enroll import run_enroll

    return run_enroll(args, _settings(args))


def cmd_keywords(args: argparse.Namespace) -> int:
    from kwstream.keywords.enrolled.enroll import run_keywords

    return run_keywords(args)


def cmd_train(args: argparse.Namespace) -> int:
    from kwstream.keywords.classifier.train import train_from_args

    return train_from_args(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="kwstream: %(message)s")
    try:
        commands = {"listen": cmd_listen, "devices": cmd_devices, "eval": cmd_eval, "bench": cmd_bench, "train": cmd_train,
                    "enroll": cmd_enroll, "keywords": cmd_keywords}
        return commands[args.command](args)
    except KwstreamError as exc:
        print(f"kwstream: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("kwstream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
