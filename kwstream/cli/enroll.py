"""``kwstream enroll`` (a keyword from spoken examples: files or microphone takes, with prompts and a
level meter) and ``kwstream keywords`` (list or remove them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from kwstream.audio.io import not_a_file, read_audio
from kwstream.audio.sources import resolve_input_device
from kwstream.cli import options
from kwstream.cli.exit_codes import EXIT_FAILED
from kwstream.enroll.enroll import MIN_EXAMPLES, RECOMMENDED_EXAMPLES, EnrollSettings, check_distinct, enroll, prepare, record_take
from kwstream.errors import AudioInputError, KwstreamError
from kwstream.keywords.classifier.head import HeadConfig
from kwstream.keywords.classifier.trained import read_metadata, remove_trained, trained_names
from kwstream.keywords.enrolled.scorer import FUSED, HIDDEN, LETTERS, VOICE
from kwstream.keywords.enrolled.store import EnrolledKeyword, EnrollmentError, KeywordStore, check_name, listening_threshold
from kwstream.keywords.homophones import homophone_warning
from kwstream.model.encoder import Encoder


def level_bar(dbfs: float, width: int = 30, floor_dbfs: float = -60.0) -> str:
    filled = int(round(width * min(1.0, max(0.0, (dbfs - floor_dbfs) / -floor_dbfs))))
    return "█" * filled + "░" * (width - filled) + f" {dbfs:6.1f} dBFS"


TRIES_PER_TAKE = 3


def record_examples(name: str, count: int, device: int | str | None, seconds: float = 4.0) -> list[tuple[np.ndarray, str]]:
    """Prompt for and record ``count`` takes of ``name``, with a level meter on stderr; a take that
    is silent, too short, too long or clipped is refused with its reason and recorded again."""
    takes = []
    for i in range(count):
        source = f"microphone take {i + 1}"
        for attempt in range(1, TRIES_PER_TAKE + 1):
            print(f"kwstream: take {i + 1}/{count}: say {name!r} once now", file=sys.stderr, flush=True)
            audio = record_take(seconds, device, lambda db: print(f"\r  {level_bar(db)}", end="", file=sys.stderr, flush=True))
            print(file=sys.stderr)
            try:
                prepare(audio, source, EnrollSettings())
            except EnrollmentError as exc:
                if attempt == TRIES_PER_TAKE:
                    raise
                print(f"kwstream: {exc}", file=sys.stderr, flush=True)
                continue
            takes.append((audio, source))
            break
    return takes


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def read_take(path: str) -> np.ndarray:
    """One take given on the command line; what is no file is refused as every command refuses it (``not_a_file``),
    a stream (a FIFO, ``/dev/stdin``) with how to give it instead, since enrollment reads each take whole."""
    if problem := not_a_file(path, stream_hint="save the take to a file first"):
        raise AudioInputError(problem)
    return read_audio(path)


def negative_files(paths: list[str]) -> list[str]:
    """Files as given, folders as the audio files in them (sorted)."""
    files = []
    for path in paths:
        folder = Path(path)
        if folder.is_dir():
            found = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not found:
                raise EnrollmentError(f"--negatives {path}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
            files += found
        else:
            files.append(path)
    return files


def cmd_enroll(args: argparse.Namespace) -> int:
    """``kwstream enroll NAME --from a.wav b.wav c.wav | --record N [--negatives ...]``."""
    settings = options.settings(args)
    store = KeywordStore(args.store)
    check_name(args.name)
    if not args.replace:
        store.check_free(args.name)
    if args.record is not None and args.record < MIN_EXAMPLES:
        raise EnrollmentError(f"--record {args.record}: enrollment needs at least {MIN_EXAMPLES} takes ({RECOMMENDED_EXAMPLES} or more recommended)")
    if args.target_fa <= 0:
        raise EnrollmentError(f"--target-fa {args.target_fa}: the false alarms per hour must be above 0")
    if args.voice and args.layer is not None:
        raise EnrollmentError("--voice matches letters, the default layer's hidden states and the voice; leave out --layer")
    recordings = [(read_take(p), p) for p in args.files] if args.files else None
    if recordings:
        check_distinct(recordings)
    else:  # the microphone checked before the model loads, and each take recorded from the one it found
        device = resolve_input_device(args.input_device, instead="enroll from recordings with --from FILE...")["index"]
    negatives = [read_audio(p) for p in negative_files(args.negatives)]
    encoder = Encoder(settings.encoder)
    if recordings is None:
        recordings = record_examples(args.name, args.record, device)
    keyword = enroll(args.name, recordings, encoder, settings, args.layer, negatives, target_per_hour=args.target_fa,
                     kind=VOICE if args.voice else None)
    path = store.save(keyword, replace=args.replace)
    calibration = keyword.calibration
    print(f"kwstream: enrolled {keyword.name!r} from {len(keyword.examples)} examples ({matched(keyword)}, "
          f"threshold {keyword.threshold:.2f}: {calibration['method']}) in {path}", file=sys.stderr)
    print(f"kwstream: expected at this threshold: recall {calibration['expected_recall']:.2f} (takes found by the others), "
          f"{calibration['expected_fa_per_hour']:.2g} false alarms/h on keyword-free speech", file=sys.stderr)
    if (among_rivals := listening_threshold(keyword, rivals=True)) < keyword.threshold:
        print(f"kwstream: beside other --voice keywords it listens at {among_rivals:.2f}: they compete for each word "
              "(docs/enrollment.md, Voice keywords among rivals)", file=sys.stderr)
    if keyword.spelling is not None and (warning := homophone_warning(keyword.spelling.text)):
        print(f"kwstream: warning: the takes read as {keyword.spelling.text!r}, and {warning}", file=sys.stderr)
    return 0


def matched(keyword: EnrolledKeyword) -> str:
    """What an enrolled keyword matches, in words."""
    layer = keyword.layer
    what = {HIDDEN: f"layer {layer}", LETTERS: "letter posteriors", FUSED: f"letter posteriors + layer {layer}",
            VOICE: f"letter posteriors + layer {layer} + voice"}[keyword.kind]
    return what if keyword.spelling is None else f"{what}, or read as {keyword.spelling.text!r}"


def cmd_keywords(args: argparse.Namespace) -> int:
    """``kwstream keywords [--remove NAME] [--store DIR]``: list or remove enrolled keywords and
    keywords trained from their text (which share the store)."""
    store = KeywordStore(args.store)
    if args.remove:
        if args.remove in trained_names(store.root):
            remove_trained(store.root / args.remove)
        else:
            store.remove(args.remove)
        print(f"kwstream: removed {args.remove!r} from {store.root}", file=sys.stderr)
        return 0
    names, trained = store.names(), trained_names(store.root)
    if not names and not trained:
        print(f"kwstream: no enrolled or trained keywords in {store.root}", file=sys.stderr)
        return 0
    unreadable = 0
    for name in names + trained:
        try:  # one damaged folder must not hide the others
            print(described(store, name, trained=name in trained))
        except KwstreamError as exc:
            unreadable += 1
            print(f"{name:<16} UNREADABLE: {exc} (kwstream keywords --remove {name})")
    return EXIT_FAILED if unreadable else 0


def described(store: KeywordStore, name: str, trained: bool) -> str:
    """One line of ``kwstream keywords`` for a stored keyword."""
    if trained:
        config = HeadConfig(**read_metadata(store.root / name)["config"])
        return f"{name:<16} trained  keywords {','.join(config.keywords)}  layer {config.layer:>2}  model {config.model_name}"
    k = store.load(name)
    frames = "/".join(str(len(e)) for e in k.examples)
    return f"{k.name:<16} threshold {k.threshold:.2f}  {matched(k)}  examples {len(k.examples)} ({frames} frames)  model {k.model}"
