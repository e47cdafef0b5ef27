"""Two development reports side by side (``training.dev_report``'s JSON): per set and keyword, each one's best recall
at 0.5, 1 and 5 false alarms per hour and how many labels more or fewer the candidate finds, so that a verdict says how
many words it rests on (the natural set's 0.5 and 1 per hour are its recall before the first false alarm in about an
hour: one keyword in 280 is 0.004 of its mean).

A set whose files differ between the reports (rebuilt in between: its digest, recorded since 2026-12-08) is not
compared; a report without digests is compared with a warning.

    python -m training.compare_reports BASELINE.json CANDIDATE.json [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.dev_report import RATES

RECALLS = tuple(f"recall_at_{rate:g}" for rate in RATES)


def found(row: dict, field: str) -> int:
    """Labels found: a recall times its keyword's labels."""
    return round(row[field] * row["labels"])


def figures(row: dict) -> str:
    return " / ".join(f"{row[f]:.3f}" for f in RECALLS)


def counts(differences: list[int]) -> str:
    return " / ".join(f"{d:+d}" for d in differences)


def compare(baseline: dict, candidate: dict) -> tuple[list[str], list[str]]:
    """The markdown table's lines and the warnings (sets left out or compared without digests)."""
    lines = ["| set | keyword | labels | baseline @0.5 / 1 / 5 per h | candidate | found, candidate - baseline |",
             "| --- | --- | --- | --- | --- | --- |"]
    warnings = []
    for name, base in baseline.items():
        if name == "settings" or name not in candidate:
            continue
        other = candidate[name]
        if base.get("files") is None or other.get("files") is None:
            warnings.append(f"{name}: a report has no digest of its files; compared as if they were the same")
        elif base["files"] != other["files"]:
            warnings.append(f"{name}: measured on other files (digests {base['files']} and {other['files']}); not compared")
            continue
        totals, labels = [0] * len(RECALLS), 0
        for keyword in [k for k in base["keywords"] if k in other["keywords"]]:
            b, c = base["keywords"][keyword], other["keywords"][keyword]
            more = [found(c, f) - found(b, f) for f in RECALLS]
            totals, labels = [t + m for t, m in zip(totals, more)], labels + b["labels"]
            lines.append(f"| {name} | {keyword} | {b['labels']} | {figures(b)} | {figures(c)} | {counts(more)} |")
        lines.append(f"| {name} | **mean** | {labels} | {figures(base['mean'])} | {figures(other['mean'])} | {counts(totals)} |")
    return lines, warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    baseline, candidate = (json.loads(p.read_text()) for p in (args.baseline, args.candidate))
    lines, warnings = compare(baseline, candidate)
    print(f"baseline {baseline['settings']['model']}, candidate {candidate['settings']['model']}")
    print("\n".join(lines))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
