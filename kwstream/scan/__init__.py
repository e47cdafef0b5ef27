"""``kwstream scan``: every detection in a folder of recordings, on the cores of one machine or on a
Ray cluster, resumable.

One job per module: ``inputs`` (which files), ``worker`` (one model and one KeywordPipeline
reused across files), ``pool`` (handing files to in-process, process or Ray workers as they finish),
``manifest`` (the journal of finished files a rerun skips), ``writers`` (jsonl, csv, parquet) and
``api`` (``kwstream.scan``, the library's generator).
"""

from kwstream.scan.api import scan
from kwstream.scan.worker import FileResult, ScanDetection, ScanJob

__all__ = ["FileResult", "ScanDetection", "ScanJob", "scan"]
