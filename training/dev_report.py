"""One table of a model's keyword spotting on every development set, for choosing and describing a model.

Runs ``kwstream eval --json`` (the command users run) on each set below, then reads off, per keyword
and as a mean over a set's keywords, the recall at the default thresholds and the best recall at up to
0.5, 1 and 5 false alarms per hour (the DET curve's; the threshold is chosen on the set itself, so these
say what calibration could reach, not what the defaults give). Sets whose folder is missing are
skipped with a note. Build the sets first (each command is cached under ~/.cache/kwstream):

    python -m training.kws_streams --voices natural --per-keyword 20 --negative-minutes 30 \\
        --snr-db 0 20 --seed 13 --out ~/.cache/kwstream/dev_natural
    python -m training.wwb_streams --out ~/.cache/kwstream/dev_wwb
    python -m training.digit_streams --speakers theo --per-digit 50 --seed 3 --out ~/.cache/kwstream/theo50
    python -m training.kws_streams --seed 11 --out ~/.cache/kwstream/dev_synthetic
    python -m training.kws_streams --seed 7 --out ~/.cache/kwstream/test_synthetic

Usage: python -m training.dev_report --model kwstream/assets/model --out report.json [--sets natural_clean,...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from training.kws_streams import EVAL_KEYWORDS
from training.texts import DIGITS

CACHE = Path.home() / ".cache" / "kwstream"
RATES = (0.5, 1.0, 5.0)
WWB_PHRASES = ("jarvis", "alexa", "smart mirror", "snowboy", "view glass")


@dataclass(frozen=True)
class DevSet:
    name: str
    folder: str
    """Under the cache; its labels.csv labels its .flac streams."""
    keywords: tuple[str, ...]
    extra_negatives: str = ""
    """A glob under the cache of keyword-free streams to add (more hours for false alarms)."""


DEV_SETS = (
    DevSet("natural_clean", "dev_natural/clean", EVAL_KEYWORDS),
    DevSet("natural_noisy", "dev_natural/noisy", EVAL_KEYWORDS),
    DevSet("wwb_clean", "dev_wwb/clean", WWB_PHRASES, "dev_natural/clean/neg_*.flac"),
    DevSet("wwb_noisy", "dev_wwb/noisy", WWB_PHRASES, "dev_natural/noisy/neg_*.flac"),
    DevSet("theo", "theo50", DIGITS),
    DevSet("synthetic_dev_clean", "dev_synthetic/clean", EVAL_KEYWORDS),
    DevSet("synthetic_test_clean", "test_synthetic/clean", EVAL_KEYWORDS),
    DevSet("synthetic_test_noisy", "test_synthetic/noisy", EVAL_KEYWORDS),
)


def best_recall(keyword: dict, rate: float) -> float:
    """Highest recall on the DET sweep among thresholds with at most `rate` false alarms per hour."""
    recalls = [1 - miss for miss, fa in zip(keyword["det_miss_rate"], keyword["det_false_alarms_per_hour"], strict=True)
               if fa <= rate]
    return max(recalls, default=0.0)


def summarise(report: dict, rates: Sequence[float] = RATES) -> dict:
    """Per keyword and their mean: recall, false alarms (per hour and counted) at the defaults, best recall at ``rates``."""
    rows = {k["keyword"]: {"labels": k["labels"], "default_recall": k["recall"],
                           "default_fa_per_hour": k["false_alarms_per_hour"], "default_false_alarms": k["false_alarms"],
                           **{f"recall_at_{rate:g}": best_recall(k, rate) for rate in rates}}
            for k in report["keywords"]}
    mean = {field: sum(r[field] for r in rows.values()) / len(rows) for field in next(iter(rows.values())) if field != "labels"}
    return {"negative_hours": report["negative_hours"], "audio_s": report["audio_s"], "keywords": rows, "mean": mean}


def files_digest(labels: Path, files: Sequence[Path]) -> str:
    """What a set was measured on, as a short digest of its labels and its files' names and sizes: two reports compare
    only where it is the same (a set rebuilt between them reads differently; ``training.compare_reports``)."""
    digest = hashlib.sha256(labels.read_bytes())
    for path in files:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
    return digest.hexdigest()[:16]


def run_set(model: str, dev: DevSet, threads: int, int8: bool = False, eval_args: Sequence[str] = ()) -> dict | None:
    folder = CACHE / dev.folder
    if not (folder / "labels.csv").is_file():
        print(f"{dev.name}: {folder} not built, skipped", file=sys.stderr)
        return None
    files = sorted(folder.glob("*.flac")) + (sorted(CACHE.glob(dev.extra_negatives)) if dev.extra_negatives else [])
    summary = summarise(eval_report(model, threads, [*(["--int8"] if int8 else []), *eval_args, "--keywords", ",".join(dev.keywords),
                                                     "--labels", str(folder / "labels.csv"), *map(str, files)], dev.name))
    return {**summary, "files": files_digest(folder / "labels.csv", files)}


def eval_report(model: str, threads: int, args: Sequence[str], what: str) -> dict:
    """``kwstream eval --json``'s report of ``model`` with ``args``, run as a user runs it; a failure ends the program
    with its output, named ``what``."""
    cmd = [sys.executable, "-m", "kwstream", "eval", "--model", model, "--threads", str(threads), "--json", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what}: kwstream eval failed:\n{done.stderr}")
    return json.loads(done.stdout)


def markdown(results: dict[str, dict]) -> str:
    lines = ["| set | keyword | labels | recall @0.5/h | @1/h | @5/h | default: recall | FA/h |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, result in results.items():
        for keyword, r in [*result["keywords"].items(), ("**mean**", {**result["mean"], "labels": ""})]:
            lines.append(f"| {name} | {keyword} | {r['labels']} | {r['recall_at_0.5']:.2f} | {r['recall_at_1']:.2f} | "
                         f"{r['recall_at_5']:.2f} | {r['default_recall']:.2f} | {r['default_fa_per_hour']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, required=True, help="the report as JSON; a markdown table beside it")
    parser.add_argument("--sets", default=",".join(d.name for d in DEV_SETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--int8", action="store_true", help="the model quantised as `kwstream --int8` runs it")
    parser.add_argument("--eval-args", default="", help="more options for every `kwstream eval`, e.g. '--hop-ms 200'")
    args = parser.parse_args()
    wanted = args.sets.split(",")
    unknown = set(wanted) - {d.name for d in DEV_SETS}
    if unknown:
        parser.error(f"unknown sets {sorted(unknown)}")
    results = {}
    for dev in DEV_SETS:
        if dev.name in wanted and (result := run_set(args.model, dev, args.threads, args.int8, shlex.split(args.eval_args))) is not None:
            results[dev.name] = result
            mean = result["mean"]
            print(f"{dev.name}: mean recall @0.5/1/5 FA/h {mean['recall_at_0.5']:.3f} / {mean['recall_at_1']:.3f} / "
                  f"{mean['recall_at_5']:.3f}; defaults {mean['default_recall']:.3f} at {mean['default_fa_per_hour']:.1f}/h",
                  flush=True)
    settings = {"model": args.model, "int8": args.int8, "eval_args": args.eval_args}
    args.out.write_text(json.dumps({"settings": settings, **results}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results) + "\n")


if __name__ == "__main__":
    main()
