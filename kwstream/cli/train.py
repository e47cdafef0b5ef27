"""``kwstream train``: train a keyword classifier head; the report on stdout (text or JSON), progress on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from kwstream.errors import KwstreamError
from kwstream.train.features import AugmentSettings, default_cache_dir
from kwstream.train.fit import FitSettings
from kwstream.train.report import format_report
from kwstream.train.train import TrainSettings, train
from kwstream.model.encoder import Encoder, EncoderSettings


def cmd_train(args: argparse.Namespace) -> int:
    """``kwstream train``: the report on stdout (text or JSON), progress on stderr."""
    if args.copies < 0 or not 0 <= args.val_percent < 100:
        raise KwstreamError("--copies must be 0 or more and --val-percent in [0, 100)")
    settings = TrainSettings(
        data=Path(args.data), out=Path(args.out), layer=args.layer, unfreeze=args.unfreeze,
        val_percent=args.val_percent, val_speakers=tuple(s for s in args.val_speakers.split(",") if s),
        cache=Path(args.cache) if args.cache else default_cache_dir(), plot=Path(args.plot) if args.plot else None,
        augment=AugmentSettings(copies=args.copies), fit=FitSettings(epochs=args.epochs),
    )
    encoder = Encoder(EncoderSettings(model=args.model, device=args.device, threads=args.threads))
    report = train(settings, encoder)
    if args.json:
        print(json.dumps({**asdict(report), "false_alarms_per_hour": report.false_alarms_per_hour, "model": encoder.name}))
    else:
        print(format_report(report))
    print(f"kwstream: wrote {settings.out}", file=sys.stderr)
    return 0
