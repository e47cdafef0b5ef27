"""The ``kwstream`` command: the parser, and one module per command (listen, devices, enroll,
keywords, eval, bench, train, serve).

User mistakes (a missing file, an unknown device or model, an unspellable keyword) end with one
line on stderr and exit status 2, never a traceback. Detections go to stdout, one line each, as
text or as JSON; notices and the closing summary go to stderr, so stdout stays machine-readable.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from kwstream.cli.exit_codes import EXIT_INTERRUPTED, EXIT_USER_ERROR
from kwstream.cli.options import add_keyword_sources, add_keywords_option, add_model_options, add_window_options, pipeline_options, positive_int
from kwstream.errors import KwstreamError
from kwstream.enroll.calibration import TARGET_FA_PER_HOUR
from kwstream.enroll.enroll import MIN_EXAMPLES, RECOMMENDED_EXAMPLES
from kwstream.evaluation.bench import WORDS as BENCH_WORDS
from kwstream.evaluation.metrics import TARGET_FALSE_ALARMS_PER_HOUR
from kwstream.extras import missing_extra
from kwstream.serve.settings import DEFAULT_URI, MAX_WORKERS, ServeSettings

COMMANDS = {"listen": "listen", "devices": "devices", "enroll": "enroll", "keywords": "enroll", "eval": "eval",
            "bench": "bench", "train": "train", "serve": "serve", "scan": "scan"}
"""Each command's module in kwstream.cli (imported only when the command runs)."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log details (and tracebacks of callback errors)")
    pipeline = pipeline_options()

    parser = argparse.ArgumentParser(prog="kwstream", description="Real-time keyword spotting with wav2vec 2.0.")
    commands = parser.add_subparsers(dest="command", required=True)

    listen = commands.add_parser("listen", parents=[common, pipeline], help="spot keywords in the microphone or a recording")
    add_keywords_option(listen)
    source = listen.add_mutually_exclusive_group()
    source.add_argument("--file", metavar="PATH", help="a recording (WAV, FLAC, OGG, any rate) or - for stdin (such a recording, else raw 16 kHz s16le)")
    source.add_argument("--input-device", metavar="DEV", help="input device index or name (see `kwstream devices`)")
    listen.add_argument("--fast", action="store_true", help="with --file: run as fast as possible, not in real time")
    listen.add_argument("--json", action="store_true", help="one JSON object per detection on stdout")
    listen.add_argument("--events", action="store_true",
                        help="with --json: also every level (50 ms), voice on/off and scored window, each with a type")
    listen.add_argument(
        "--dashboard", action="store_true",
        help="live full-screen view: levels, VAD, scores, detections; keys q p tab + - (needs a terminal)",
    )

    scan = commands.add_parser("scan", parents=[common, pipeline], help="find keywords in recorded archives, on every core or a Ray cluster")
    add_keywords_option(scan)
    scan.add_argument("paths", nargs="*", metavar="PATH", help="recordings, folders (walked recursively) or glob patterns")
    scan.add_argument("--from-list", metavar="FILE", help="also the recordings named in FILE, one a line (a missing one becomes an error row)")
    scan.add_argument("--out", required=True, metavar="FILE", help="results: .jsonl, .csv or .parquet (with pyarrow); FILE.manifest beside it")
    again = scan.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="go on with an earlier scan into --out, skipping its finished files")
    again.add_argument("--overwrite", action="store_true", help="start again, replacing --out")
    scan.add_argument("--workers", type=positive_int, help="worker processes, or Ray actors (default: the cores, or the cluster's CPUs)")
    scan.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                      help="run on a Ray cluster (ADDRESS as for ray.init, e.g. auto or ray://head:10001; none: Ray's default)")
    scan.add_argument("--channels", choices=("mix", "each"), default="mix",
                      help="mix: a file's channels mixed to mono (default); each: every channel scanned on its own, a channel column in the rows")
    scan.add_argument("--json", action="store_true", help="a JSON line per finished file and a summary line on stdout")

    commands.add_parser("devices", parents=[common], help="list audio input devices")

    serve = commands.add_parser("serve", parents=[common, pipeline],
                                help="a Wyoming wake-word service (Home Assistant) for many streams at once")
    add_keywords_option(serve)
    serve.add_argument("--uri", default=DEFAULT_URI, help=f"where to listen: tcp://HOST:PORT or unix://PATH (default {DEFAULT_URI})")
    serve.add_argument("--max-clients", type=positive_int, default=ServeSettings.max_clients,
                       help=f"connections served at once; more are answered with an error (default {ServeSettings.max_clients})")
    serve.add_argument("--workers", type=positive_int, default=ServeSettings.workers,
                       help=f"threads that run the model, taking turns over the connections; each keeps a core busy, so more than the "
                            f"cores only take turns on them (default {ServeSettings.workers}, at most {MAX_WORKERS})")
    serve.add_argument("--max-backlog-s", type=float, default=ServeSettings.max_backlog_s, metavar="S",
                       help="audio a client may have waiting for the model before the server stops reading it "
                            f"(default {ServeSettings.max_backlog_s:g})")
    serve.add_argument("--idle-timeout", type=float, default=ServeSettings.idle_timeout_s, metavar="S",
                       help="close a connection that sends nothing for S seconds while nothing is owed to it; 0: never "
                            f"(default {ServeSettings.idle_timeout_s:g})")
    serve.add_argument("--json", action="store_true", help="log lines (connections, streams, detections) as JSON on stderr")

    enroll = commands.add_parser("enroll", parents=[common, pipeline], help="store a keyword from a few spoken examples")
    enroll.add_argument("name", metavar="NAME", help="the keyword's name (letters, digits, _ or -)")
    examples = enroll.add_mutually_exclusive_group(required=True)
    takes = f"{MIN_EXAMPLES} or more, {RECOMMENDED_EXAMPLES} or more recommended"
    examples.add_argument("--from", dest="files", nargs="+", metavar="FILE", help=f"recordings of the keyword, one example each ({takes})")
    examples.add_argument("--record", type=int, metavar="N", help=f"record N examples from the microphone ({takes})")
    enroll.add_argument("--input-device", metavar="DEV", help="with --record: input device index or name")
    enroll.add_argument("--negatives", nargs="+", default=[], metavar="FILE_OR_DIR",
                        help="your own keyword-free speech (files, or folders of .wav/.flac/.ogg) to calibrate the "
                             "threshold against, besides the bundled speech")
    enroll.add_argument("--target-fa", type=float, default=TARGET_FA_PER_HOUR, metavar="PER_HOUR",
                        help=f"false alarms per hour the threshold aims at on keyword-free speech (default {TARGET_FA_PER_HOUR:g})")
    enroll.add_argument("--layer", type=int, help="encoder layer of the features (default: chosen for the model)")
    enroll.add_argument("--voice", action="store_true",
                        help="also match the takes' voice (a speech embedding): finds the enrolling speaker's word more often "
                             "(measured on one speaker), other speakers' less; for a keyword one person says (needs a CTC head)")
    enroll.add_argument("--replace", action="store_true", help="overwrite a keyword of the same name")

    keywords_cmd = commands.add_parser("keywords", parents=[common], help="list or remove enrolled and trained keywords")
    keywords_cmd.add_argument("--remove", metavar="NAME", help="delete this enrolled keyword or trained model")
    keywords_cmd.add_argument("--store", metavar="DIR", help="enrolled keywords' directory (default: the user data dir)")

    evaluate = commands.add_parser("eval", parents=[common, pipeline], help="recall, false alarms per hour and DET curves on labelled recordings")
    evaluate.add_argument("--keywords", default="", metavar="KW[:T],...", help="typed keywords to evaluate, with optional thresholds")
    evaluate.add_argument("--labels", required=True, metavar="CSV", help="rows stream,keyword,start,end (stream = file stem or name, seconds)")
    evaluate.add_argument("--transcripts", metavar="CSV",
                          help="rows stream,start,end,text of what was said: list every false alarm with the text it fired on")
    evaluate.add_argument("--plot", metavar="PNG", help="write DET curves here")
    evaluate.add_argument("--json", action="store_true", help="the full report as one JSON object")
    evaluate.add_argument("--suggest", action="store_true", help="print --keywords with the thresholds that give 0.5 false alarms per hour")
    evaluate.add_argument("--target-fa-per-hour", type=float, default=TARGET_FALSE_ALARMS_PER_HOUR, metavar="RATE",
                          help=f"false alarms per hour that --suggest and --calibrate aim for (default {TARGET_FALSE_ALARMS_PER_HOUR})")
    evaluate.add_argument("--calibrate", metavar="JSON", help="write default thresholds (a model's kwstream.json: each keyword's own, and per length for the others) from this run")
    evaluate.add_argument("files", nargs="+", metavar="FILE", help="recordings; files without label rows are keyword-free")

    bench = commands.add_parser("bench", parents=[common], help="measure CPU cost per second of speech and silence")
    model = bench.add_mutually_exclusive_group()
    model.add_argument("--random", choices=["tiny", "base"], help="a random-weight model of this size instead (cost only)")
    add_model_options(bench, model_group=model)
    bench.add_argument("--keywords", metavar="KW,...",
                       help=f"keywords scored in each window (default: the words spoken in the speech stream, for latency: "
                            f"{','.join(BENCH_WORDS.values())}; none where --enrolled, --classifier or --trained name some)")
    add_keyword_sources(bench)
    bench.add_argument("--seconds", type=float, default=30.0, help="length of each test stream")
    bench.add_argument("--repeats", type=int, default=3, help="runs per stream; medians are reported")
    add_window_options(bench)
    bench.add_argument("--json", action="store_true", help="results as one JSON object")
    bench.add_argument("--serve", metavar="N,...", help="load-test `kwstream serve` instead: N real-time Wyoming "
                       "clients on loopback for each count given (e.g. 1,4,8,16), each streaming --seconds of the demo (hey, stop)")
    bench.add_argument("--workers", type=positive_int, help=f"with --serve: the server's model threads (default {ServeSettings.workers})")

    train = commands.add_parser("train", parents=[common], help="train a keyword classifier head on a Speech Commands "
                                "layout, or on speech synthesised from typed keywords")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="DIR", help="one folder per keyword, _unknown_ and _background_noise_")
    source.add_argument("--keywords", metavar="KW,...", help="train these typed keywords on synthesised speech "
                        "(confirms their CTC candidates in listen/eval --trained)")
    train.add_argument("--out", metavar="PATH", help="with --data: the head file to write (e.g. head.pt); "
                       "with --keywords: a new folder for the trained keywords")
    train.add_argument("--name", help="with --keywords: store them under this name in the keyword store (see `kwstream keywords`)")
    train.add_argument("--store", metavar="DIR", help="with --name: the keyword store (default: the user data dir)")
    add_model_options(train, runtime=False)
    train.add_argument("--layer", type=int, help="encoder layer the head reads (default: top for CTC models, 2/3 up otherwise)")
    train.add_argument("--unfreeze", type=int, default=0, metavar="N", help="also train the top N encoder blocks (default 0)")
    train.add_argument("--epochs", type=positive_int, help="training epochs (default 30; 20 with --keywords)")
    train.add_argument("--copies", type=int, help="noisy, time-shifted copies per training clip (default 2; 1 with --keywords)")
    train.add_argument("--examples", type=positive_int, metavar="N", help="with --keywords: synthesised utterances of "
                       "each keyword (default 360; near misses 3/4 and other speech 1/2 as many)")
    train.add_argument("--workers", type=positive_int, help="with --keywords: processes that synthesise speech, ~400 MB each (default: the cores, up to 4)")
    train.add_argument("--val-percent", type=float, help="share of speakers (voices) held out by name hash (default 10; 15 with --keywords)")
    train.add_argument("--val-speakers", default="", metavar="S,...", help="hold out exactly these speakers instead")
    train.add_argument("--cache", metavar="DIR", help="feature cache (default: ~/.cache/kwstream/classifier-features)")
    train.add_argument("--plot", metavar="PNG", help="confusion matrix image (default: HEAD.confusion.png)")
    train.add_argument("--json", action="store_true", help="the report as one JSON object")
    parser.commands = commands.choices  # each command's parser, to tell a mistyped option with its own usage
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="kwstream: %(message)s")
    try:
        command = importlib.import_module(f"kwstream.cli.{COMMANDS[args.command]}")
        return getattr(command, f"cmd_{args.command}")(args)
    except KwstreamError as exc:
        print(f"kwstream: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as exc:  # a lean install meeting a command of an extra
        error = missing_extra(exc)
        if error is None:
            raise
        print(f"kwstream: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("kwstream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
