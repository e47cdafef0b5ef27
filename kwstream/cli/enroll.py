"""``kwstream enroll`` (a keyword from spoken examples: files or microphone takes, with prompts and a
level meter) and ``kwstream keywords`` (list or remove them)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from kwstream.audio.io import read_audio
from kwstream.cli import options
from kwstream.enroll.enroll import MIN_EXAMPLES, RECOMMENDED_EXAMPLES, enroll, record_take
from kwstream.keywords.classifier.head import HeadConfig
from kwstream.keywords.classifier.trained import read_metadata, remove_trained, trained_names
from kwstream.keywords.enrolled.store import EnrollmentError, KeywordStore, check_name
from kwstream.model.encoder import Encoder


def level_bar(dbfs: float, width: int = 30, floor_dbfs: float = -60.0) -> str:
    filled = int(round(width * min(1.0, max(0.0, (dbfs - floor_dbfs) / -floor_dbfs))))
    return "█" * filled + "░" * (width - filled) + f" {dbfs:6.1f} dBFS"


def record_examples(name: str, count: int, device: int | str | None, seconds: float = 4.0) -> list[tuple[np.ndarray, str]]:
    """Prompt for and record ``count`` takes of ``name``, with a level meter on stderr."""
    takes = []
    for i in range(count):
        print(f"kwstream: take {i + 1}/{count}: say {name!r} once now", file=sys.stderr, flush=True)
        takes.append((record_take(seconds, device, lambda db: print(f"\r  {level_bar(db)}", end="", file=sys.stderr, flush=True)),
                       f"microphone take {i + 1}"))
        print(file=sys.stderr)
    return takes


def cmd_enroll(args: argparse.Namespace) -> int:
    """``kwstream enroll NAME --from a.wav b.wav c.wav | --record N [--negatives ...]``."""
    settings = options.settings(args)
    store = KeywordStore(args.store)
    check_name(args.name)
    if not args.replace:
        store.check_free(args.name)
    if args.record is not None and args.record < MIN_EXAMPLES:
        raise EnrollmentError(f"--record {args.record}: enrollment needs at least {MIN_EXAMPLES} takes ({RECOMMENDED_EXAMPLES} or more recommended)")
    recordings = [(read_audio(p), p) for p in args.files] if args.files else None
    negatives = [read_audio(p) for p in args.negatives]
    encoder = Encoder(settings.encoder)
    if recordings is None:
        device = int(args.input_device) if args.input_device and args.input_device.isdigit() else args.input_device
        recordings = record_examples(args.name, args.record, device)
    keyword = enroll(args.name, recordings, encoder, settings, args.layer, negatives)
    path = store.save(keyword, replace=args.replace)
    print(f"kwstream: enrolled {keyword.name!r} from {len(keyword.examples)} examples (layer {keyword.layer}, "
          f"threshold {keyword.threshold:.2f}: {keyword.calibration['method']}) in {path}", file=sys.stderr)
    return 0


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
    for name in names:
        k = store.load(name)
        frames = "/".join(str(len(e)) for e in k.examples)
        print(f"{k.name:<16} threshold {k.threshold:.2f}  layer {k.layer:>2}  examples {len(k.examples)} ({frames} frames)  model {k.model}")
    for name in trained:
        config = HeadConfig(**read_metadata(store.root / name)["config"])
        print(f"{name:<16} trained  keywords {','.join(config.keywords)}  layer {config.layer:>2}  model {config.model_name}")
    return 0
