"""The results file: one row per detection, one per file that could not be read; JSON lines, CSV, or
Parquet (with pyarrow), chosen by the output's name."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from kwstream.errors import KwstreamError
from kwstream.scan.worker import FileResult

COLUMNS = ("file", "channel", "keyword", "score", "start", "end", "error")


def rows(result: FileResult) -> list[dict]:
    """The file's rows: its detections (``channel`` only where the scan kept channels apart), and an
    error row if it failed."""
    found = [{k: v for k, v in asdict(d).items() if k != "channel" or v is not None} for d in result.detections]
    return found + ([{"file": result.file, "error": result.error}] if result.error else [])


class Writer(Protocol):
    def write(self, rows: list[dict]) -> None: ...
    def close(self) -> None: ...


class JsonLinesWriter:
    """One JSON object a line, flushed after each file's rows."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("w")

    def write(self, rows: list[dict]) -> None:
        self._file.writelines(json.dumps(row) + "\n" for row in rows)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class CsvWriter:
    """The COLUMNS, empty where a row has no value; flushed after each file's rows."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("w", newline="")
        self._csv = csv.DictWriter(self._file, COLUMNS)
        self._csv.writeheader()

    def write(self, rows: list[dict]) -> None:
        self._csv.writerows(rows)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ParquetWriter:
    """All rows in one table, written at the end (the manifest keeps them until then)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._rows: list[dict] = []

    def write(self, rows: list[dict]) -> None:
        self._rows += rows

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"file": pa.string(), "channel": pa.int32(), "keyword": pa.string(), "score": pa.float64(),
                 "start": pa.float64(), "end": pa.float64(), "error": pa.string()}
        table = pa.table({c: pa.array([r.get(c) for r in self._rows], types[c]) for c in COLUMNS})
        pq.write_table(table, self._path)


WRITERS = {".jsonl": JsonLinesWriter, ".csv": CsvWriter, ".parquet": ParquetWriter}


def check_output(path: Path) -> None:
    """Raise the user's error for an output the scan cannot write, before any work."""
    if path.suffix not in WRITERS:
        raise KwstreamError(f"--out {path}: name it .jsonl, .csv or .parquet")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise KwstreamError("a .parquet output needs pyarrow: pip install pyarrow") from None
    if not path.parent.is_dir():
        raise KwstreamError(f"--out {path}: no such folder {path.parent}")


def open_writer(path: Path) -> Writer:
    """A new (emptied) results file of the format its name says."""
    return WRITERS[path.suffix](path)
