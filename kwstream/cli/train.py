"""``kwstream train``: train a keyword classifier head, from a folder of recordings (``--data``) or
from typed keywords on synthesised speech (``--keywords``); the report on stdout (text or JSON), progress on stderr."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from kwstream.errors import KwstreamError
from kwstream.keywords.classifier.trained import check_free, trained_folder
from kwstream.keywords.enrolled.store import check_name
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.processes import cores
from kwstream.train.features import AugmentSettings, default_cache_dir
from kwstream.train.fit import FitSettings
from kwstream.train.keywords import MAX_DEFAULT_WORKERS, KeywordTrainSettings, format_keyword_report, train_keywords
from kwstream.train.report import format_report
from kwstream.train.synth import SynthSettings
from kwstream.train.train import TrainSettings, train


def cmd_train(args: argparse.Namespace) -> int:
    """``kwstream train``: the report on stdout (text or JSON), progress on stderr."""
    if args.copies is not None and args.copies < 0 or args.val_percent is not None and not 0 <= args.val_percent < 100:
        raise KwstreamError("--copies must be 0 or more and --val-percent in [0, 100)")
    if args.keywords is not None:
        return train_from_text(args)
    if not args.out:
        raise KwstreamError("--data needs --out HEAD (a file)")
    if extra := [option for option, given in (("--name", args.name), ("--examples", args.examples), ("--workers", args.workers)) if given]:
        raise KwstreamError(f"{', '.join(extra)}: only for --keywords (a head trained from text), not with --data")
    settings = TrainSettings(
        data=Path(args.data), out=Path(args.out), layer=args.layer, unfreeze=args.unfreeze,
        val_percent=TrainSettings.val_percent if args.val_percent is None else args.val_percent,
        val_speakers=tuple(s for s in args.val_speakers.split(",") if s),
        cache=Path(args.cache) if args.cache else default_cache_dir(), plot=Path(args.plot) if args.plot else None,
        augment=AugmentSettings(copies=AugmentSettings.copies if args.copies is None else args.copies),
        fit=FitSettings(epochs=args.epochs or FitSettings.epochs),
    )
    encoder = Encoder(EncoderSettings(model=args.model, device=args.device, threads=args.threads))
    report = train(settings, encoder)
    if args.json:
        print(json.dumps({**asdict(report), "false_alarms_per_hour": report.false_alarms_per_hour, "model": encoder.name}))
    else:
        print(format_report(report))
    print(f"kwstream: wrote {settings.out}", file=sys.stderr)
    return 0


def train_from_text(args: argparse.Namespace) -> int:
    """``--keywords``: every input checked (names, spellings) before the slow synthesis starts."""
    if bool(args.out) == bool(args.name):
        raise KwstreamError("--keywords needs one of --name NAME (the keyword store) or --out DIR")
    if args.unfreeze or args.val_speakers or args.plot:
        raise KwstreamError("--unfreeze, --val-speakers and --plot are for --data")
    out = trained_folder(check_name(args.name), args.store) if args.name else Path(args.out)  # a name, not a path
    check_free(out)
    examples = args.examples or SynthSettings.positives
    synth = SynthSettings(positives=examples, near_misses=examples * 3 // 4, general=examples // 2)
    defaults = KeywordTrainSettings((), out)
    settings = KeywordTrainSettings(
        keywords=tuple(args.keywords.split(",")), out=out, synth=synth, layer=args.layer,
        workers=args.workers or min(cores(), MAX_DEFAULT_WORKERS),
        val_percent=defaults.val_percent if args.val_percent is None else args.val_percent,
        feature_cache=Path(args.cache) if args.cache else default_cache_dir(),
        augment=AugmentSettings(copies=defaults.augment.copies if args.copies is None else args.copies),
        fit=FitSettings(epochs=args.epochs or defaults.fit.epochs),
    )
    encoder = Encoder(EncoderSettings(model=args.model, device=args.device, threads=args.threads))
    started = time.monotonic()
    report = train_keywords(settings, encoder, lambda line: print(f"kwstream: {line}", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({**asdict(report), "seconds": time.monotonic() - started, "model": encoder.name, "out": str(out)}))
    else:
        print(format_keyword_report(report))
    print(f"kwstream: wrote {out} in {(time.monotonic() - started) / 60:.1f} min; use it with "
          f"`kwstream listen --keywords {','.join(report.keywords)} --trained {args.name or out}"
          f"{f' --store {args.store}' if args.name and args.store else ''}`", file=sys.stderr)
    return 0
