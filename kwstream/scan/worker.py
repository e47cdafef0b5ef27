"""One scan worker: a model load and a KeywordPipeline, reused for every file it is handed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from kwstream.audio.io import SAMPLE_RATE, truncated
from kwstream.audio.sources import AudioFile
from kwstream.keywords.keyword_set import KeywordSet, KeywordSettings, parse_keywords
from kwstream.model.encoder import Encoder
from kwstream.stream.detector import Detection
from kwstream.stream.pipeline import KeywordPipeline, PipelineSettings


@dataclass(frozen=True)
class TypedKeywords:
    """Typed keywords as a picklable recipe, built on each worker's own encoder."""

    keywords: tuple[str, ...]
    threshold: float | None = None

    def __call__(self, encoder: Encoder, settings: PipelineSettings) -> KeywordSet:
        typed = [k for spec in self.keywords for k in parse_keywords(spec)]
        return KeywordSet(encoder, typed, settings=KeywordSettings(threshold=self.threshold))


KeywordRecipe = Callable[[Encoder, PipelineSettings], KeywordSet]
"""What each worker calls to build its keywords; picklable (processes and Ray actors receive it)."""


@dataclass(frozen=True)
class ScanJob:
    """What every worker needs: the pipeline settings and the keywords' recipe."""

    keywords: KeywordRecipe
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    each_channel: bool = False
    """Scan every channel of a file on its own (``--channels each``) instead of their mean."""

    def with_threads(self, threads: int) -> ScanJob:
        """The job with ``threads`` model threads per worker, unless the settings name a number."""
        if self.settings.encoder.threads is not None:
            return self
        return replace(self, settings=replace(self.settings, encoder=replace(self.settings.encoder, threads=threads)))


@dataclass(frozen=True)
class ScanDetection:
    """A detection in a scanned file: the file, and the keyword's place in it (seconds from its start)."""

    file: str
    keyword: str
    score: float
    start: float
    end: float
    channel: int | None = None
    """The channel it was heard on (from 0) with ``--channels each``; None where the channels were mixed."""

    @classmethod
    def of(cls, file: str, d: Detection, channel: int | None = None) -> ScanDetection:
        return cls(file, d.keyword, round(d.score, 4), round(d.start, 3), round(d.end, 3), channel)


@dataclass(frozen=True)
class FileResult:
    """Everything one file gave: its detections, or the error that stopped it (with those found before)."""

    file: str
    audio_s: float
    detections: tuple[ScanDetection, ...] = ()
    error: str | None = None
    cpu_s: float = 0.0
    """The worker's CPU seconds (all its threads) on this file."""


class Scanner:
    """Loads the model once and scans file after file with one pipeline."""

    def __init__(self, job: ScanJob, encoder: Encoder | None = None, keywords: KeywordSet | None = None) -> None:
        """``encoder`` and ``keywords`` reuse what the caller has already loaded (the in-process worker)."""
        self.encoder = encoder or Encoder(job.settings.encoder)
        self.keywords = keywords or job.keywords(self.encoder, job.settings)
        self.pipeline = KeywordPipeline(self.keywords, self.encoder, job.settings, events=False)
        self.each_channel = job.each_channel

    def scan(self, path: str | Path) -> FileResult:
        """The file's detections, its blocks streamed through the pipeline as ``listen --file`` reads
        them; with ``each_channel``, one pass per channel (the file is read again for each: memory
        stays one block, and decoding costs little next to the model)."""
        name = str(path)
        cpu0 = time.process_time()
        found: list[ScanDetection] = []
        audio_s = 0.0
        error = None
        recording = AudioFile(path, realtime=False)
        channel = None
        self.pipeline.reset()  # a file that fails its check reads as 0 s, not as the last file's length
        try:
            recording.check()
            for channel in range(recording.channels()) if self.each_channel else [None]:
                self.pipeline.reset()
                for block in recording.samples(channel):
                    found += (ScanDetection.of(name, d, channel) for d in self.pipeline.push(block))
                found += (ScanDetection.of(name, d, channel) for d in self.pipeline.flush())
                audio_s = self.pipeline.position / SAMPLE_RATE
            error = truncated(path)  # libsndfile reads a cut WAV as a shorter one, without a word
        except Exception as exc:  # noqa: BLE001  a bad file is a row of the results, never the end of the scan
            read_s = self.pipeline.position / SAMPLE_RATE
            audio_s = max(audio_s, read_s)
            where = "" if channel is None else f"channel {channel}: "
            error = str(exc) if read_s == 0 else f"{where}read error after {read_s:.2f} s: {exc}"
        return FileResult(name, audio_s, tuple(found), error, time.process_time() - cpu0)

