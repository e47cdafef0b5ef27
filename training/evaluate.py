"""Greedy-CTC evaluation: CER on held-out synthetic voices/rates and digit accuracy on the held-out FSDD speaker.

Usage: python -m training.evaluate --model kwstream/assets/model --corpus DIR [--out results.json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import Wav2Vec2ForCTC

from training.corpus import Utterance, read_manifest
from training.vocab import decode_ctc


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance over characters or words."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev_diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev_diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev_diag + (r != h))
    return row[-1]


def error_rate(refs: Sequence[str], hyps: Sequence[str], words: bool = False) -> float:
    """Corpus-level CER (or WER with words=True): total edits / total reference length."""
    split = (lambda s: s.split()) if words else (lambda s: list(s))
    edits = sum(edit_distance(split(r), split(h)) for r, h in zip(refs, hyps, strict=True))
    return edits / max(sum(len(split(r)) for r in refs), 1)


def normalize_audio(audio: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per utterance: what Wav2Vec2FeatureExtractor(do_normalize=True) does."""
    return ((audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)).astype(np.float32)


@torch.no_grad()
def transcribe(model: Wav2Vec2ForCTC, audios: Sequence[np.ndarray], batch_seconds: float = 60.0) -> list[str]:
    """Greedy CTC transcripts, batched by length (zero padding, no attention mask, like the processor)."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(a) for a in audios])
    texts: list[str] = [""] * len(audios)
    start = 0
    while start < len(order):  # ascending lengths: the newest clip is the batch's longest
        end = start + 1
        while end < len(order) and len(audios[order[end]]) * (end - start + 1) <= batch_seconds * 16_000:
            end += 1
        batch_ids = order[start:end]
        longest = max(len(audios[i]) for i in batch_ids)
        batch = np.zeros((len(batch_ids), longest), dtype=np.float32)
        for row, i in enumerate(batch_ids):
            batch[row, : len(audios[i])] = normalize_audio(audios[i])
        ids = model(torch.from_numpy(batch).to(device)).logits.argmax(-1).cpu().numpy()
        for row, i in enumerate(batch_ids):
            texts[i] = decode_ctc(ids[row].tolist())
        start = end
    return texts


def load_audio(corpus: Path, rows: Sequence[Utterance]) -> list[np.ndarray]:
    return [sf.read(corpus / r.path, dtype="float32")[0] for r in rows]


def evaluate_rows(model: Wav2Vec2ForCTC, corpus: Path, rows: Sequence[Utterance]) -> dict[str, float]:
    """Metrics per group: synthetic CER/WER (all and per engine) and FSDD digit accuracy."""
    hyps = transcribe(model, load_audio(corpus, rows))
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups["all"].append(i)
        groups[r.source].append(i)
        if r.source != "fsdd":
            groups["synthetic"].append(i)
    results: dict[str, float] = {}
    for name, idx in sorted(groups.items()):
        refs, hs = [rows[i].text for i in idx], [hyps[i] for i in idx]
        results[f"{name}_cer"] = round(error_rate(refs, hs), 4)
        results[f"{name}_n"] = len(idx)
        if name == "fsdd":
            results["fsdd_digit_accuracy"] = round(float(np.mean([r == h for r, h in zip(refs, hs)])), 4)
        else:
            results[f"{name}_wer"] = round(error_rate(refs, hs, words=True), 4)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--split", default="eval")
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--examples", type=int, default=8, help="print this many reference/hypothesis pairs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = Wav2Vec2ForCTC.from_pretrained(args.model)
    rows = read_manifest(args.corpus / f"{args.split}.jsonl")
    results = evaluate_rows(model, args.corpus, rows)
    print(json.dumps(results, indent=1))
    rng = np.random.default_rng(0)
    for i in rng.choice(len(rows), size=min(args.examples, len(rows)), replace=False):
        print(f"REF {rows[i].text!r} [{rows[i].voice}]\nHYP {transcribe(model, load_audio(args.corpus, [rows[i]]))[0]!r}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
