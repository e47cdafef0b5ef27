"""Enrolled keywords end to end: the ten digits enrolled from one FSDD speaker's takes and heard in digit streams
through `kwstream eval`, the product's own path.

This is the figure of record for enrollment; ``benchmarks.enroll_methods`` is the fast screen, which scores clips
and unsmoothed windows itself. Each digit is enrolled from recordings 0-2 of ``--enroll`` (as `kwstream enroll zero
--from 0_jackson_0.wav 0_jackson_1.wav 0_jackson_2.wav` does, into a temporary store) and heard with `kwstream eval
--enrolled zero ... --enrolled nine --keywords ''` in the streams of ``--listen`` (``training.digit_streams --speakers
theo,lucas,nicolas,jackson --per-digit 47 --exclude-index 0-2 --seed 1``, the streams docs/enrollment.md measures: every
speaker's is built, in that order, so that each is the same whichever are heard); then again with the
keywords' spellings removed, to show what the spelling adds (``--no-spelling`` skips that). Per digit: recall and
false alarms per keyword-hour at the enrolled threshold, and the best recall at 0.5 / 1 / 2 false alarms per hour
along the DET sweep (one threshold per keyword, chosen on the streams: what calibration could reach).

    python -m benchmarks.enroll_streams [--enroll jackson] [--listen lucas,nicolas] [--voice] [--no-spelling]
        [--model DIR] [--fsdd ../shared/data/fsdd] [--threads 1] [--out results.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from kwstream.assets import MODEL_DIR
from kwstream.audio.io import read_audio
from kwstream.enroll.enroll import enroll
from kwstream.keywords.enrolled.scorer import VOICE
from kwstream.keywords.enrolled.store import KeywordStore
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.spotter import SpotterSettings
from training.dev_report import eval_report, summarise
from training.digit_streams import DEFAULT_FSDD_DIR, StreamSettings, build
from training.texts import DIGITS

RATES = (0.5, 1.0, 2.0)
"""The false-alarm rates issue 32's goals are set at."""
TAKES = (0, 1, 2)
STREAMS = StreamSettings(per_digit=47, seed=1)
SPEAKERS = ("theo", "lucas", "nicolas", "jackson")
"""FSDD's speakers, in the order their streams are drawn (one generator: a stream depends on those before it)."""


def enroll_digits(fsdd: Path, speaker: str, store: KeywordStore, encoder: Encoder, voice: bool) -> None:
    """The ten digits from ``speaker``'s takes ``TAKES``, each as `kwstream enroll` stores it."""
    for digit, name in enumerate(DIGITS):
        paths = [fsdd / "recordings" / f"{digit}_{speaker}_{i}.wav" for i in TAKES]
        keyword = enroll(name, [(read_audio(p), p.name) for p in paths], encoder, SpotterSettings(), kind=VOICE if voice else None)
        store.save(keyword)
        spelling = f", or read as {keyword.spelling.text!r} at {keyword.spelling.threshold:.2f}" if keyword.spelling else ""
        print(f"{name}: threshold {keyword.threshold:.2f}{spelling}", file=sys.stderr)


def heard(model: str, store: Path, streams: list[Path], labels: Path, threads: int) -> dict:
    """The store's digits on ``streams`` (``kwstream eval --json``, ``summarise``d at ``RATES``): at the enrolled
    thresholds ("default") and the best at each rate, per digit and their mean."""
    enrolled = [a for name in DIGITS for a in ("--enrolled", name)]
    report = eval_report(model, threads, ["--store", str(store), *enrolled, "--keywords", "", "--labels", str(labels),
                                          *map(str, streams)], str(store))
    return summarise(report, RATES)


def markdown(results: dict[str, dict]) -> str:
    rates = " | ".join(f"best @{rate:g}/h" for rate in RATES)
    lines = [f"| keywords | digit | recall | FA/h | false alarms | {rates} |", "| --- | --- | --- | --- | --- |" + " --- |" * len(RATES)]
    for variant, found in results.items():
        for name, r in [*found["keywords"].items(), ("**mean**", found["mean"])]:
            best = " | ".join(f"{r[f'recall_at_{rate:g}']:.2f}" for rate in RATES)
            lines.append(f"| {variant} | {name} | {r['default_recall']:.3f} | {r['default_fa_per_hour']:.2f} | "
                         f"{r['default_false_alarms']:g} | {best} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enroll", default="jackson", help="the FSDD speaker whose takes 0-2 enroll each digit")
    parser.add_argument("--listen", default="lucas,nicolas", help="the FSDD speakers whose streams are heard")
    parser.add_argument("--voice", action="store_true",
                        help="enroll with --voice (also match the enrolling voice; such keywords keep no spelling)")
    parser.add_argument("--no-spelling", dest="spelling", action="store_false", help="skip the run without spellings")
    parser.add_argument("--model", default=str(MODEL_DIR))
    parser.add_argument("--fsdd", type=Path, default=DEFAULT_FSDD_DIR)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="the results as JSON")
    args = parser.parse_args()
    listen = args.listen.split(",")
    if unknown := set(listen + [args.enroll]) - set(SPEAKERS):
        raise SystemExit(f"no FSDD speaker {', '.join(sorted(unknown))}; choose from {', '.join(SPEAKERS)}")
    encoder = Encoder(EncoderSettings(model=args.model, threads=args.threads))
    with tempfile.TemporaryDirectory(prefix="kwstream-enroll-streams-") as tmp:
        tmp = Path(tmp)
        streams = [p for p in build(args.fsdd, tmp / "streams", SPEAKERS, STREAMS, exclude=TAKES) if p.stem in listen]
        labels, store, plain = tmp / "streams" / "labels.csv", KeywordStore(tmp / "store"), KeywordStore(tmp / "plain")
        enroll_digits(args.fsdd, args.enroll, store, encoder, args.voice)
        results = {"as enrolled": heard(args.model, store.root, streams, labels, args.threads)}
        keywords = [store.load(name) for name in DIGITS]
        spelled = sum(k.spelling is not None for k in keywords)
        if args.spelling and spelled:
            for keyword in keywords:
                plain.save(dataclasses.replace(keyword, spelling=None))
            results["the takes' match alone"] = heard(args.model, plain.root, streams, labels, args.threads)
    if args.out:
        setup = {"enroll": args.enroll, "listen": listen, "voice": args.voice, "spelled": spelled, "model": args.model}
        args.out.write_text(json.dumps({"setup": setup, "results": results}, indent=1) + "\n")
    voice = " --voice" if args.voice else ""
    print(f"{args.enroll} -> {args.listen}{voice}, {spelled} of 10 digits with a spelling\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
