"""``kwstream scan``: every detection in a folder of recordings, written to a results file as the
files finish, with a progress bar (or --json lines) and a summary per keyword. Exit status: 0 when
every file was read, 1 when some could not be (their error rows are in the output with the others'
rows), 2 for a mistake on the command line, 130 when interrupted."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from kwstream.cli import options
from kwstream.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from kwstream.errors import KwstreamError
from kwstream.extras import require
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder
from kwstream.audio.io import audio_info
from kwstream.scan.inputs import find_files
from kwstream.scan.manifest import ScanOutput, manifest_path
from kwstream.processes import cores
from kwstream.scan.pool import ray_connection, scan_local, scan_ray
from kwstream.scan.worker import FileResult, Scanner, ScanJob
from kwstream.scan.writers import check_output
from kwstream.stream.pipeline import PipelineSettings


@dataclass(frozen=True)
class CommandLineKeywords:
    """The keywords the command line names, as a recipe each worker runs on its own encoder."""

    args: argparse.Namespace

    def __call__(self, encoder: Encoder, settings: PipelineSettings) -> KeywordSet:
        return options.keyword_set(self.args, encoder, settings, quiet=True)


def duration_s(path: Path) -> float:
    """The recording's length from its header (0 where it has none: the scan reports the file). What
    is no regular file is not opened (``audio_info``): a FIFO would wait for a writer before the scan had begun."""
    try:
        return audio_info(path).duration
    except Exception:  # noqa: BLE001  unreadable: its error row comes from the worker
        return 0.0


class Report:
    """Progress as a rich bar on stderr (audio hours done, hours per second, ETA) or as JSON lines on stdout."""

    def __init__(self, files: int, audio_s: float, as_json: bool) -> None:
        self.files, self.audio_s, self.json = files, audio_s, as_json
        self.done_files, self.done_s, self.t0 = 0, 0.0, time.perf_counter()
        self.progress = Progress(
            TextColumn("{task.fields[files]}"), BarColumn(),
            TextColumn("{task.fields[hours]}"), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=Console(stderr=True), disable=as_json,
        )
        self.task = self.progress.add_task("scan", total=max(audio_s, 1e-9), files="", hours="", rate="")

    def __enter__(self) -> Report:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def add(self, result: FileResult) -> None:
        self.done_files += 1
        self.done_s += result.audio_s
        per_s = self.done_s / 3600 / max(time.perf_counter() - self.t0, 1e-9)
        if self.json:
            print(json.dumps({"type": "progress", "file": result.file, "detections": len(result.detections),
                              "error": result.error, "files_done": self.done_files, "files": self.files,
                              "audio_h_done": round(self.done_s / 3600, 5), "audio_h": round(self.audio_s / 3600, 5),
                              "audio_h_per_s": round(per_s, 6)}), flush=True)
        self.progress.update(self.task, advance=result.audio_s, files=f"{self.done_files}/{self.files} files",
                             hours=f"{self.done_s / 3600:.2f}/{self.audio_s / 3600:.2f} audio h", rate=f"{per_s:.4f} h/s")


def failed_files(output: ScanOutput) -> int:
    """The files of the whole output (a resumed run's earlier ones included) that have an error row."""
    return sum(1 for r in output.results.values() if r.error)


def exit_status(output: ScanOutput, interrupted: bool) -> int:
    """130 when interrupted; else 1 when any file could not be read, so that a script or a cron job
    can tell (the rest's rows are written all the same); else 0."""
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed_files(output) else EXIT_OK


def summary(output: ScanOutput, names: list[str], as_json: bool, interrupted: bool) -> None:
    """The closing counts per keyword (over the whole output, a resumed run's earlier files included)."""
    results = output.results.values()
    count = Counter(d.keyword for r in results for d in r.detections)
    files = Counter(k for r in results for k in {d.keyword for d in r.detections})
    errors = failed_files(output)
    audio_h = sum(r.audio_s for r in results) / 3600
    if as_json:
        print(json.dumps({"type": "summary", "files": len(output.results), "errors": errors, "audio_h": round(audio_h, 5),
                          "interrupted": interrupted, "out": str(output.out),
                          "keywords": {k: {"count": count[k], "files": files[k]} for k in names}}), flush=True)
        return
    table = Table("keyword", "detections", "files")
    for keyword in names:
        table.add_row(keyword, str(count[keyword]), str(files[keyword]))
    console = Console(stderr=True)
    console.print(table)
    console.print(f"kwstream: {len(output.results)} files, {audio_h:.2f} audio hours: rows in {output.out}")
    if errors:
        console.print(f"kwstream: {errors} file(s) could not be read: see the rows with an error in {output.out}")
    if interrupted:
        console.print("kwstream: interrupted; run the same command with --resume to go on")


def cmd_scan(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_output(out)
    files = find_files(args.paths, args.from_list)
    if (out.exists() or manifest_path(out).exists()) and not (args.resume or args.overwrite):
        raise KwstreamError(f"{out} exists: pass --resume to go on with it or --overwrite to start again")
    if args.ray is not None:
        require("ray")
    with ray_connection(args.ray or None) if args.ray is not None else nullcontext():  # no cluster: no output files either
        settings = options.settings(args)
        encoder = Encoder(settings.encoder)
        keywords = options.keyword_set(args, encoder, settings)  # unknown or unspellable keywords fail here, once
        job = ScanJob(CommandLineKeywords(args), settings, each_channel=args.channels == "each")
        header = {"keywords": list(keywords.names), "thresholds": dict(keywords.thresholds), "model": args.model}
        if job.each_channel:  # mixed scans keep the header they had before --channels existed
            header["channels"] = "each"
        output = ScanOutput(out, header, resume=args.resume)
        todo = [f for f in files if str(f) not in output.results]
        if args.ray is not None:
            results = scan_ray(todo, job, args.workers, args.ray or None)  # on the connection made above
        else:
            workers = args.workers or cores()
            results = scan_local(todo, job, workers, Scanner(job, encoder, keywords) if workers == 1 else None)
        interrupted = False
        try:
            with Report(len(todo), sum(map(duration_s, todo)), args.json) as report:
                for result in results:
                    output.add(result)
                    report.add(result)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            results.close()
            output.close()
        summary(output, list(keywords.names), args.json, interrupted)
        return exit_status(output, interrupted)
