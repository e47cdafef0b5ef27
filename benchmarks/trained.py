"""Keywords trained from their text (``kwstream train --keywords``) on the natural-voice development
streams: recall at 0.5, 1 and 5 false alarms per hour for the CTC scorer alone, the trained model
alone, and CTC confirmed by it, read off ``kwstream eval --json``'s DET sweep (the threshold chosen
on the set itself, as ``training.dev_report`` does), with each mode's default-threshold recall and
false alarms per hour; then, at matched recall, the false alarms per hour each mode needs to reach
the recall CTC has at its default threshold (the lowest along its sweep; inf: never reached). The streams' voices (Kokoro blends holding the held-out style) are never
used to synthesise training examples.

Usage: python -m benchmarks.trained --model kwstream/assets/model --trained DIR [--trained DIR2 ...]
(the keywords are those of the trained models)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kwstream.keywords.classifier.head import HeadConfig
from kwstream.keywords.classifier.trained import read_metadata
from training.dev_report import CACHE, RATES, eval_report, summarise

SETS = {"natural_clean": "dev_natural/clean", "natural_noisy": "dev_natural/noisy"}
MODES = {"CTC": [], "trained": ["--trained-alone"], "CTC+trained": []}


def run(model: str, folder: Path, keywords: list[str], mode: str, trained: list[str], threads: int) -> dict:
    """``kwstream eval --json``'s report of one mode on one set."""
    extra = [a for t in trained for a in ("--trained", t)] + MODES[mode] if mode != "CTC" else []
    return eval_report(model, threads, ["--keywords", ",".join(keywords), *extra, "--labels", str(folder / "labels.csv"),
                                        *map(str, sorted(folder.glob("*.flac")))], f"{folder} {mode}")


def false_alarms_at_recall(report: dict, recall: float) -> float:
    """The fewest false alarms per hour along ``report``'s DET sweep with at least ``recall``."""
    return min((fa for miss, fa in zip(report["det_miss_rate"], report["det_false_alarms_per_hour"]) if 1 - miss >= recall - 1e-9),
               default=float("inf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained", action="append", required=True, help="a trained model's folder; repeatable")
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="all results as JSON")
    args = parser.parse_args()
    keywords = [k for t in args.trained for k in HeadConfig(**read_metadata(Path(t))["config"]).keywords]
    reports = {name: {mode: run(args.model, CACHE / folder, keywords, mode, args.trained, args.threads) for mode in MODES}
               for name, folder in SETS.items()}
    results = {name: {mode: summarise(report)["keywords"] for mode, report in by_mode.items()} for name, by_mode in reports.items()}
    matched = {name: {k["keyword"]: {mode: false_alarms_at_recall(next(r for r in by_mode[mode]["keywords"] if r["keyword"] == k["keyword"]), k["recall"])
                                     for mode in MODES} | {"recall": k["recall"]}
                      for k in by_mode["CTC"]["keywords"]} for name, by_mode in reports.items()}
    if args.out:
        args.out.write_text(json.dumps({"results": results, "matched": matched}, indent=1) + "\n")
    rates = "/".join(f"{r:g}" for r in RATES)
    print("| set | keyword | " + " | ".join(f"{m}: recall @{rates} FA/h | default recall, FA/h" for m in MODES) + " |")
    print("| --- | --- |" + " --- | --- |" * len(MODES))
    for name, by_mode in results.items():
        for keyword in [*by_mode["CTC"], "mean"]:
            cells = []
            for mode in MODES:
                rows = by_mode[mode]
                r = ({f: sum(row[f] for row in rows.values()) / len(rows) for f in next(iter(rows.values())) if f != "labels"}
                     if keyword == "mean" else rows[keyword])
                cells.append(" / ".join(f"{r[f'recall_at_{rate:g}']:.2f}" for rate in RATES))
                cells.append(f"{r['default_recall']:.2f}, {r['default_fa_per_hour']:.1f}")
            print(f"| {name} | {keyword} | " + " | ".join(cells) + " |")
    print("\n| set | keyword | CTC's default recall | " + " | ".join(f"{m}: FA/h at it" for m in MODES) + " |")
    print("| --- | --- | --- |" + " --- |" * len(MODES))
    for name, rows in matched.items():
        for keyword, row in rows.items():
            print(f"| {name} | {keyword} | {row['recall']:.2f} | " + " | ".join(f"{row[m]:.1f}" for m in MODES) + " |")

if __name__ == "__main__":
    main()
