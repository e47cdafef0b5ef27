"""``kwstream bench``: CPU cost per second of speech and of silence, and latency."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from rich.console import Console
from rich.progress import Progress

from kwstream.cli import options
from kwstream.cli.tables import figure, print_table
from kwstream.errors import KwstreamError
from kwstream.evaluation.bench import WORDS, bench, random_model, startup
from kwstream.model.encoder import Encoder
from kwstream.stream.vad import VadSettings


MAX_SECONDS = 3600
"""The longest test stream: an hour of audio and its per-window results take about 250 MB."""


def cmd_bench(args: argparse.Namespace) -> int:
    if not 0 < args.seconds <= MAX_SECONDS or args.repeats < 1:
        raise KwstreamError(f"--seconds must be above 0 and at most {MAX_SECONDS} (each stream is built in memory), "
                            "--repeats at least 1")
    if args.workers is not None and not args.serve:
        raise KwstreamError("--workers is the server's: give it with --serve")
    others = args.enrolled or args.classifier or args.trained
    if args.serve:
        if others or args.keywords is not None:
            raise KwstreamError("--serve times the server's own keywords (hey, stop): leave out --keywords, --enrolled, "
                                "--classifier and --trained")
        from kwstream.cli.serve_bench import cmd_serve_bench

        return cmd_serve_bench(args)
    args.model = random_model(args.random) if args.random else args.model
    args.no_vad, args.vad_aggressiveness, args.threshold = False, VadSettings.aggressiveness, None
    if args.keywords is None:  # the spoken digits, unless enrolled or trained keywords are to be timed on their own
        args.keywords = "" if others else ",".join(WORDS.values())
    settings = options.settings(args)
    encoder = Encoder(settings.encoder)
    keywords = options.keyword_set(args, encoder, settings)
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=3 * args.repeats)
        results = bench(encoder, keywords, settings, args.seconds, args.repeats, lambda: progress.advance(task))
        started = startup(args.model, args.backend, args.repeats, lambda: progress.advance(task))
    about = {"model": encoder.name, "parameters_m": round(encoder.parameters / 1e6, 2), "device": args.device,
             "threads": args.threads, "int8": args.int8, "backend": args.backend, "keywords": keywords.names, "window_s": settings.window_s, "hop_s": settings.hop_s,
             "left_context_s": settings.left_context_s, "right_context_s": settings.right_context_s}
    if args.json:
        print(json.dumps({**about, "results": [asdict(r) for r in results], "startup": asdict(started)}))
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
    print_table(f"{encoder.name} ({about['parameters_m']} M parameters, {args.device}), medians of {args.repeats} runs",
                ["", *(r.stream for r in results)], [[label, *map(cell, results)] for label, cell in metrics],
                "keywords found, false alarms: summed over the runs; encoded ×: audio seconds the transformer computes per stream second; latency: from the end of a "
                "spoken keyword to its detection; memory: the whole process's peak resident size")
    print(f"start-up of a new `kwstream listen` (median of {args.repeats}): {started.wall_s:.2f} s to listening,\n"
          f"{started.cpu_s:.2f} CPU-s with its first second of audio, peak memory {started.peak_memory_mb:.0f} MB")
    return 0
