"""``kwstream bench --serve N,...``: the load test of ``kwstream serve`` (kwstream/evaluation/serve_load.py)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict

from rich.console import Console

from kwstream.cli import options
from kwstream.cli.tables import figure, print_table
from kwstream.errors import KwstreamError
from kwstream.evaluation.serve_load import (CHUNK_SAMPLES, KEPT_UP_BACKLOG_S, LINGER_S, STAGGER_S, percentile,
                                           pipeline_latencies, serve_load)
from kwstream.model.encoder import Encoder
from kwstream.model.resolve import AUTO_MODEL
from kwstream.serve.settings import ServeSettings

MAX_CLIENTS = 64
"""The most clients one run of the load test opens."""


def client_counts(spec: str) -> list[int]:
    try:
        counts = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or not all(0 < n <= MAX_CLIENTS for n in counts):
        raise KwstreamError(f"--serve takes client counts 1-{MAX_CLIENTS}, e.g. 1,4,8,16; got {spec!r}")
    return counts


def server_args(args: argparse.Namespace) -> list[str]:
    """The bench's model options, passed on to the server."""
    found = ["--workers", str(args.workers), "--device", args.device, "--backend", args.backend]
    found += [] if args.model == AUTO_MODEL else ["--model", args.model]
    found += ["--threads", str(args.threads)] if args.threads else []
    return found + (["--int8"] if args.int8 else [])


def cmd_serve_bench(args: argparse.Namespace) -> int:
    counts = client_counts(args.serve)
    args.workers = args.workers or ServeSettings.workers
    if args.random:
        raise KwstreamError("--serve measures detections too: it needs a real model, not --random")
    console = Console(stderr=True)
    console.print(f"kwstream: load test, {', '.join(map(str, counts))} client(s), {args.seconds:g} s each "
                  f"(about {len(counts) * (args.seconds + STAGGER_S + LINGER_S):.0f} s once the server has started)")
    results = serve_load(counts, args.seconds, server_args(args))
    about = {"clients": counts, "seconds": args.seconds, "workers": args.workers, "cpu_count": os.cpu_count(),
             "load_average": os.getloadavg(), "chunk_samples": CHUNK_SAMPLES}
    alone = pipeline_latencies(Encoder(options.encoder_settings(args)), args.seconds)  # after the runs: not beside them
    floor = {"latency_p50_s": percentile(alone, 0.5), "latency_p95_s": percentile(alone, 0.95)}
    if args.json:
        print(json.dumps({**about, "results": [asdict(r) for r in results], "pipeline_alone": floor}))
        return 0
    rows = (
        ("streams kept up", lambda r: f"{r.streams_kept_up}/{r.clients}"),
        ("max backlog s", lambda r: figure(r.max_backlog_s, ".2f")),
        ("max stop lag s", lambda r: figure(r.max_stop_lag_s, ".2f")),
        ("server CPU cores", lambda r: f"{r.server_cpu_cores:.2f}"),
        ("keywords found", lambda r: f"{r.detected}/{r.keywords}"),
        ("false alarms", lambda r: str(r.false_alarms)),
        ("latency p50 s", lambda r: figure(r.latency_p50_s, ".2f")),
        ("latency p95 s", lambda r: figure(r.latency_p95_s, ".2f")),
        ("latency max s", lambda r: figure(r.latency_max_s, ".2f")),
        ("client errors", lambda r: str(r.errors)),
    )
    print_table(f"kwstream serve, {args.workers} worker(s), {os.cpu_count()} CPUs, {results[0].audio_s:.0f} s per stream",
                ["", *(f"{r.clients} client{'s' * (r.clients != 1)}" for r in results)], [[label, *map(cell, results)] for label, cell in rows],
                f"kept up: never more than {KEPT_UP_BACKLOG_S:g} s of audio waiting for the model; latency: from a "
                "keyword's end (as captured) to its detection event at the client; CPU: the server process's, all threads; "
                f"the pipeline alone, fed the same chunks with no server and no compute time, gives p50 "
                f"{figure(floor['latency_p50_s'], '.2f')} s and p95 {figure(floor['latency_p95_s'], '.2f')} s")
    return 0
