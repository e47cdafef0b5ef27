"""Options that several commands share, each declared once, and what the commands make of them:
settings, the keyword set, the audio source."""

from __future__ import annotations

import argparse
import sys

from kwstream.audio.sources import AudioFile, AudioSource, Microphone, RawStdin
from kwstream.cli.exit_codes import EXIT_FAILED
from kwstream.errors import KwstreamError
from kwstream.extras import require
from kwstream.keywords.base import KeywordScorer
from kwstream.keywords.keyword_set import Keyword, KeywordSet, KeywordSettings, parse_keywords, split_threshold
from kwstream.model.encoder import AUTO_MODEL, BACKENDS, Encoder, EncoderSettings
from kwstream.spotter import SpotterSettings
from kwstream.stream.detector import DetectorSettings
from kwstream.stream.vad import VadSettings

DEVICES = ["cpu", "cuda", "mps"]


def unit_interval(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def positive_ms(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of milliseconds, got {text}")
    return value


def add_model_options(parser: argparse.ArgumentParser, *, runtime: bool = True,
                      model_group: argparse._ActionsContainer | None = None) -> None:
    """--model, --device, --threads and (``runtime``) --int8, --backend; --model into ``model_group`` if given."""
    (model_group or parser).add_argument("--model", default=AUTO_MODEL,
                                         help="hub id or local save_pretrained directory (default: auto)")
    parser.add_argument("--device", default="cpu", choices=DEVICES, help="where the model runs")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for the model (default: one per physical core it may run on)")
    if runtime:
        parser.add_argument("--int8", action="store_true", help="quantise the model's linear layers to int8 (CPU; faster)")
        parser.add_argument("--backend", choices=BACKENDS, default=EncoderSettings.backend,
                            help="torch, or onnx: the same model exported once and run by ONNX Runtime (CPU; faster)")


def add_keywords_option(parser: argparse.ArgumentParser) -> None:
    """--keywords of the commands that spot typed keywords live (listen, serve)."""
    parser.add_argument("--keywords", default="", metavar="KW[:T],...",
                        help="comma-separated keywords, each with an optional threshold: hey:0.8,stop,'hey computer'")


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """--window-ms, --hop-ms, --smoothing-windows, --left-context-ms, --right-context-ms."""
    d = SpotterSettings()
    parser.add_argument("--window-ms", type=positive_ms, default=round(d.window_s * 1000), help="encoder window length")
    parser.add_argument("--hop-ms", type=positive_ms, default=round(d.hop_s * 1000),
                        help="step between windows: the latency of a detection, and the compute")
    parser.add_argument("--smoothing-windows", type=positive_int, default=d.detector.smoothing_windows,
                        help=f"consecutive windows of speech whose scores are averaged (default {d.detector.smoothing_windows})")
    parser.add_argument("--left-context-ms", type=positive_ms, default=round(d.left_context_s * 1000),
                        help="audio before each step's new frames that they attend to")
    parser.add_argument("--right-context-ms", type=positive_ms, default=round(d.right_context_s * 1000),
                        help="audio after a frame before its encoding is final")
    parser.add_argument("--statistics-memory-s", type=float, default=d.statistics_memory_s,
                        help="normalise the model's first layer over the voiced audio heard so far, fading over this many seconds (0: each chunk alone)")


def add_keyword_sources(parser: argparse.ArgumentParser) -> None:
    """--classifier, --enrolled, --trained, --trained-alone and --store: keywords besides typed ones (``keyword_set``)."""
    parser.add_argument("--classifier", action="append", default=[], metavar="HEAD",
                        help="a head from `kwstream train` (for the same --model); spots its keywords; repeatable")
    parser.add_argument("--enrolled", action="append", default=[], metavar="NAME[:T]",
                        help="a keyword from `kwstream enroll` (same --model), optionally with a threshold; repeatable")
    parser.add_argument("--trained", action="append", default=[], metavar="NAME",
                        help="keywords from `kwstream train --keywords` (a name in the store or a folder; same --model): "
                        "each CTC candidate of --keywords scores its CTC score times their posterior (all of the model's keywords when "
                        "--keywords is empty); repeatable")
    parser.add_argument("--trained-alone", action="store_true", help="with --trained: spot its keywords with the trained model alone, no CTC")
    parser.add_argument("--store", metavar="DIR", help="enrolled and trained keywords' directory (default: the user data dir, see `kwstream keywords`)")


def pipeline_options() -> argparse.ArgumentParser:
    """The options of every command that runs the whole pipeline (listen, eval, enroll, scan)."""
    pipeline = argparse.ArgumentParser(add_help=False)
    add_model_options(pipeline)
    pipeline.add_argument("--threshold", type=unit_interval,
                          help="threshold in [0, 1] for every keyword (default: the model's calibrated one for the keyword or its length, else 0.5)")
    add_window_options(pipeline)
    pipeline.add_argument("--vad-aggressiveness", type=int, choices=[0, 1, 2, 3], default=VadSettings.aggressiveness, help="0 keeps most audio, 3 drops most non-speech")
    pipeline.add_argument("--no-vad", action="store_true", help="encode all audio, not only voiced spans")
    add_keyword_sources(pipeline)
    return pipeline


def encoder_settings(args: argparse.Namespace) -> EncoderSettings:
    """The model options (``add_model_options``) as encoder settings."""
    return EncoderSettings(model=args.model, device=args.device, threads=args.threads, int8=args.int8, backend=args.backend)


def settings(args: argparse.Namespace) -> SpotterSettings:
    """The pipeline settings the options give (a bad combination is the user's error)."""
    try:
        return SpotterSettings(
            encoder=encoder_settings(args),
            vad=VadSettings(enabled=not args.no_vad, aggressiveness=args.vad_aggressiveness),
            keywords=KeywordSettings(threshold=args.threshold),
            detector=DetectorSettings(smoothing_windows=args.smoothing_windows),
            window_s=args.window_ms / 1000,
            hop_s=args.hop_ms / 1000,
            left_context_s=args.left_context_ms / 1000,
            right_context_s=args.right_context_ms / 1000,
            statistics_memory_s=args.statistics_memory_s,
        )
    except ValueError as exc:
        raise KwstreamError(str(exc)) from None


def scorers(args: argparse.Namespace, encoder: Encoder, pipeline: SpotterSettings) -> list[KeywordScorer]:
    """The keyword scorers besides typed keywords that the command line names, checked against
    ``encoder``: enrolled keywords (--enrolled; their spellings read with ``pipeline``'s pause between words)
    and trained classifiers (--classifier)."""
    found: list[KeywordScorer] = []
    if args.classifier:
        require("torch", "--classifier")
        from kwstream.keywords.classifier.head import ClassifierScorer

        found += [ClassifierScorer.load(path, encoder) for path in args.classifier]
    if args.enrolled:
        from kwstream.keywords.enrolled.store import KeywordStore, load_scorer

        found.append(load_scorer(args.enrolled, KeywordStore(args.store), encoder, pipeline.keywords.pause_ms))
    return found


def trained(args: argparse.Namespace, typed: list[Keyword], encoder: Encoder,
            pipeline: SpotterSettings) -> tuple[list[Keyword], list[KeywordScorer]]:
    """The scorers of ``--trained NAME`` options and the typed keywords they leave to plain CTC:
    those no trained model knows (in ``--trained-alone`` mode each model spots all of its own keywords)."""
    require("torch", "--trained")
    from kwstream.keywords.classifier.trained import load_trained, trained_folder, trained_scorer

    found: list[KeywordScorer] = []
    known: set[str] = set()
    for spec in args.trained:
        head = load_trained(trained_folder(spec, args.store), encoder)
        confirmed = [k.text for k in typed if k.text in head.config.keywords]
        if typed and not confirmed and not args.trained_alone:
            raise KwstreamError(f"{spec} was trained on {', '.join(head.config.keywords)}, none of --keywords")
        found.append(trained_scorer(head, encoder, confirmed, alone=args.trained_alone, pause_ms=pipeline.keywords.pause_ms))
        known |= set(head.config.keywords)
    return [k for k in typed if k.text not in known], found


def keyword_set(args: argparse.Namespace, encoder: Encoder, pipeline: SpotterSettings, *, quiet: bool = False) -> KeywordSet:
    """The keywords the options name (--keywords, --enrolled NAME[:T], --classifier), with their
    thresholds; the homophone warnings are printed here, once (not at all if ``quiet``)."""
    typed = parse_keywords(args.keywords)
    own = {name: t for name, t in map(split_threshold, args.enrolled) if t is not None}  # they outrank every default
    own |= {k.text: k.threshold for k in typed if k.threshold is not None}  # also for those --trained confirms
    others = scorers(args, encoder, pipeline)
    if args.trained:
        typed, found = trained(args, typed, encoder, pipeline)
        others += found
    elif args.trained_alone:
        raise KwstreamError("--trained-alone needs --trained NAME")
    if not typed and not others:
        raise KwstreamError("no keywords given: pass e.g. --keywords hey,stop")
    keywords = KeywordSet(encoder, typed, others, thresholds=own, settings=pipeline.keywords)
    if not quiet:
        warn(keywords.homophone_warnings)
    return keywords


def warn(lines: list[str]) -> None:
    for line in lines:
        print(f"kwstream: {line}", file=sys.stderr, flush=True)


def source(args: argparse.Namespace) -> AudioSource:
    """The input named on the command line, checked before any model loads."""
    if args.fast and not args.file:
        raise KwstreamError("--fast needs --file")
    if args.file == "-":
        found = RawStdin(realtime=not args.fast)
    elif args.file:
        found = AudioFile(args.file, realtime=not args.fast)
    else:
        found = Microphone(args.input_device)
    found.check()
    return found


def input_status(source: AudioSource, status: int) -> int:
    """The exit status once ``source`` has ended: ``status``, unless its input broke (printed here, once):
    EXIT_FAILED, a recording not read to its end as a failing device, since what came before was heard and
    reported (a file that cannot be opened at all is refused with EXIT_USER_ERROR before it is read)."""
    if not source.error:
        return status
    print(f"kwstream: error: {source.error}", file=sys.stderr)
    return EXIT_FAILED
