"""The scan's journal beside its output (``OUT.manifest``): a header with what is being looked for,
then one line per finished file with its rows. The output is rewritten from it on a resume, so a run
cut anywhere (Ctrl-C, a kill, a power cut) leaves nothing that a rerun cannot continue."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from kwstream.errors import KwstreamError
from kwstream.scan.worker import FileResult, ScanDetection
from kwstream.scan.writers import Writer, open_writer, rows


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest")


def _record(result: FileResult) -> str:
    detections = [[d.keyword, d.score, d.start, d.end] + ([] if d.channel is None else [d.channel]) for d in result.detections]
    return json.dumps({"file": result.file, "audio_s": round(result.audio_s, 3), "cpu_s": round(result.cpu_s, 3),
                       "error": result.error, "detections": detections}) + "\n"


def _result(line: str) -> FileResult:
    r = json.loads(line)
    found = tuple(ScanDetection(r["file"], *d) for d in r["detections"])
    return FileResult(r["file"], r["audio_s"], found, r["error"], r["cpu_s"])


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C waits until the block is done (in the main thread), so a file's record is all or nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


class ScanOutput:
    """The results file and its manifest, kept consistent: a file's rows go to both or neither."""

    def __init__(self, out: Path, header: dict, resume: bool) -> None:
        """``header``: what the scan looks for (a resume must look for the same); ``resume``: keep
        the files the manifest records as finished, else start empty."""
        self.out = out
        self.path = manifest_path(out)
        self.results: dict[str, FileResult] = {}
        if resume and out.exists() and not self.path.exists():  # not a scan's output: resuming would replace it
            raise KwstreamError(f"{out} has no {self.path.name} beside it, so it is no scan's output to resume: "
                                "pass --overwrite to replace it, or another --out")
        if resume and self.path.exists():
            self.results = self._read(header)
        with _uninterrupted():
            self.path.write_text(json.dumps({"scan": header}) + "\n" + "".join(map(_record, self.results.values())))
            self._manifest = self.path.open("a")
            self._writer: Writer = open_writer(out)
            for result in self.results.values():
                self._writer.write(rows(result))

    def _read(self, header: dict) -> dict[str, FileResult]:
        lines = self.path.read_text().splitlines()
        try:
            found = json.loads(lines[0])["scan"]
        except (IndexError, ValueError, KeyError, TypeError):
            raise KwstreamError(f"{self.path} is not a kwstream scan manifest: use --overwrite") from None
        if found != header:
            raise KwstreamError(f"{self.out} was scanned for other keywords, thresholds, model or channels: "
                                "resume it with the same options, or pass --overwrite")
        results = {}
        for line in lines[1:]:
            try:
                result = _result(line)
            except (ValueError, KeyError, TypeError):  # the last line of a run killed mid-write
                continue
            results[result.file] = result
        return results

    def add(self, result: FileResult) -> None:
        with _uninterrupted():
            self._manifest.write(_record(result))
            self._manifest.flush()
            self._writer.write(rows(result))
            self.results[result.file] = result

    def close(self) -> None:
        with _uninterrupted():
            self._writer.close()
            self._manifest.close()
