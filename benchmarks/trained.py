"""Keywords trained from their text (``kwstream train --keywords``) on the natural-voice development
streams: recall at 0.5, 1 and 5 false alarms per hour for the CTC scorer alone, the trained model
alone, and CTC confirmed by it, read off ``kwstream eval --json``'s DET sweep (the threshold chosen
on the set itself, as ``training.dev_report`` does), with each mode's default-threshold recall and
false alarms per hour. The streams' voices (Kokoro blends holding the held-out style) are never
used to synthesise training examples.

Usage: python -m benchmarks.trained --trained NAME --model kwstream/assets/model [--keywords hey,stop,computer,lights]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from training.dev_report import CACHE, RATES, summarise

SETS = {"natural_clean": "dev_natural/clean", "natural_noisy": "dev_natural/noisy"}
MODES = {"CTC": [], "trained": ["--trained-alone"], "CTC+trained": []}


def run(model: str, folder: Path, keywords: str, mode: str, trained: str, threads: int) -> dict:
    extra = [] if mode == "CTC" else ["--trained", trained, *MODES[mode]]
    cmd = [sys.executable, "-m", "kwstream", "eval", "--model", model, "--threads", str(threads), "--json",
           "--keywords", keywords, *extra, "--labels", str(folder / "labels.csv"), *map(str, sorted(folder.glob("*.flac")))]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{folder} {mode}: kwstream eval failed:\n{done.stderr}")
    return summarise(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained", required=True, help="a name in the keyword store or a folder")
    parser.add_argument("--model", required=True)
    parser.add_argument("--keywords", default="hey,stop,computer,lights")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="all results as JSON")
    args = parser.parse_args()
    results = {name: {mode: run(args.model, CACHE / folder, args.keywords, mode, args.trained, args.threads)
                      for mode in MODES} for name, folder in SETS.items()}
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    rates = "/".join(f"{r:g}" for r in RATES)
    print(f"| set | keyword | " + " | ".join(f"{m}: recall @{rates} FA/h | default recall, FA/h" for m in MODES) + " |")
    print("| --- | --- |" + " --- | --- |" * len(MODES))
    for name, by_mode in results.items():
        for keyword in [*by_mode["CTC"]["keywords"], "mean"]:
            cells = []
            for mode in MODES:
                r = by_mode[mode]["mean"] if keyword == "mean" else by_mode[mode]["keywords"][keyword]
                cells.append(" / ".join(f"{r[f'recall_at_{rate:g}']:.2f}" for rate in RATES))
                cells.append(f"{r['default_recall']:.2f}, {r['default_fa_per_hour']:.1f}")
            print(f"| {name} | {keyword} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
