"""``kwstream.scan``: the library's way to scan recordings."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from kwstream.scan.inputs import find_files
from kwstream.scan.pool import scan_local, scan_ray
from kwstream.scan.worker import ScanDetection, ScanJob, TypedKeywords
from kwstream.stream.pipeline import PipelineSettings

log = logging.getLogger(__name__)


def scan(
    paths: Iterable[str | Path] | str | Path,
    keywords: Iterable[str] | str,
    *,
    workers: int = 1,
    settings: PipelineSettings | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    each_channel: bool = False,
) -> Iterator[ScanDetection]:
    """Every detection in the recordings (files, folders walked recursively, glob patterns), yielded
    as each file finishes; a file that cannot be read is logged as a warning and skipped (a truncated
    WAV: its detections, and a warning).

    ```python
    for hit in kwstream.scan("archive/", keywords=["hey", "stop"], workers=4):
        print(hit.file, hit.keyword, hit.start)
    ```
    ``workers`` > 1 runs worker processes (one model each); ``ray`` runs ``workers`` Ray actors
    (default one per CPU of the cluster at ``ray_address``, or of the one Ray is already connected to).
    ``each_channel`` scans every channel of a file on its own (each detection's ``channel`` says which).
    ``settings``: ``PipelineSettings.archive()`` reads about twice as fast, at a cost in recall.
    """
    files = find_files([paths] if isinstance(paths, (str, Path)) else paths)
    names = (keywords,) if isinstance(keywords, str) else tuple(keywords)
    job = ScanJob(TypedKeywords(names), settings or PipelineSettings(), each_channel)
    results = scan_ray(files, job, workers if workers > 1 else None, ray_address) if ray else scan_local(files, job, workers)
    for result in results:
        if result.error:
            log.warning("%s: %s", result.file, result.error)
        yield from result.detections
