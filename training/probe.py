"""The probe of issue 31: how much of our letters can a small head read from frozen frames?

Usage: python -m training.probe --corpus DIR --v9-model DIR [--candidates whisper1,...,oww,v9_l3,v9_l4] [--hours 1] [--steps N]

Each candidate feature extractor stays frozen; one small CTC head (input layer norm, one hidden
layer, about 100 k parameters whatever the frame width) is trained on its frames of the corpus's
SYNTHETIC training clips only (the same subset for every candidate), then read greedily on the held-out
REAL speakers (``whisper_head.real_dev``: the crowd's wake-phrase development share and FSDD's theo).
Holding the head small and the data synthetic asks the question the transplant depends on: which
frames already carry what real speech sounds like, so that synthetic speech can teach the letters.

Candidates: Whisper tiny.en's blocks 1-4 (4 after the final norm) on each clip alone, unpadded, as a
stream's short window; openWakeWord's speech embedding (at its own step of 80 ms, which is too coarse
for most sentences' letters under CTC, and every 20 ms); the bundled v9 model's last two layers.
Frames are cached per extractor under ``--cache``; each candidate's result is one JSON file there, so
a rerun does only what is missing.

Keyword recall: each real clip's own phrase or digit is its keyword; kwstream's CTC scorer scores
every keyword on every clip (the head's log-probs between a pause of certain blanks on either side,
standing for the silence around a keyword in a stream). For each keyword, the threshold is the
lowest at which at most 1 % of the clips of OTHER keywords fire; recall is the share of its own
clips above it, averaged over the keywords of a group.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from kwstream.audio.io import read_audio
from kwstream.keywords.ctc import CtcKeywordScorer
from kwstream.model.vocab import ENGLISH_CTC_TOKENS, WORD_DELIMITER
from training.corpus import SHARED_DATA_DIR, read_manifest
from training.evaluate import error_rate
from training.schedule import warmup_cosine
from kwstream.model.speech_embedding import MEL_HOP_S, STEP_FRAMES, WINDOW_S
from training.vocab import PAD_ID, VOCAB, decode_ctc, encode
from training.whisper_head import real_dev

DEFAULT_CACHE = Path.home() / ".cache" / "kwstream" / "probe"
SYNTHETIC_SOURCES = ("espeak", "flite", "festival", "hibari", "kokoro")
HEAD_PARAMETERS = 100_000
SPLITS = ("train", "synthetic", "real")
"""The synthetic training subset, the corpus's held-out synthetic voices, the held-out real speakers."""
GROUPS = {"whisper": ("whisper1", "whisper2", "whisper3", "whisper4"), "oww": ("oww",), "oww20": ("oww20",),
          "v9": ("v9_l3", "v9_l4")}
"""One pass of an extractor gives the frames of all its candidates."""
OWW_STEPS = {"oww": STEP_FRAMES, "oww20": 2}
"""openWakeWord's own step (80 ms), and a 20 ms step whose frames can hold a letter each."""
FRAME_S = {"whisper": 0.02, "v9": 0.02} | {group: steps * MEL_HOP_S for group, steps in OWW_STEPS.items()}
PAUSE_S = 0.16
"""Silence the keyword scorer takes for a word boundary (its default 8 frames of 20 ms)."""


@dataclass(frozen=True)
class ProbeConfig:
    hours: float = 1.0
    steps: int = 3000
    batch_clips: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    false_accept: float = 0.01
    seed: int = 0


def group_of(candidate: str) -> str:
    return next(g for g, members in GROUPS.items() if candidate in members)


def extractor(group: str, v9_model: Path | None) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A function from 16 kHz audio to each of the group's candidates' (frames, dims) features."""
    if group == "whisper":
        from training.whisper_teacher import WhisperTeacher, block_outputs, log_mel

        teacher = WhisperTeacher()

        @torch.no_grad()
        def whisper(audio: np.ndarray) -> dict[str, np.ndarray]:
            stem = teacher.stem(log_mel(torch.from_numpy(audio)[None], teacher.filters))
            return {f"whisper{i + 1}": out[0].numpy() for i, out in enumerate(block_outputs(teacher.encoder, stem))}
        return whisper
    if group in OWW_STEPS:
        from kwstream.model.speech_embedding import SpeechEmbedding

        embedding = SpeechEmbedding()
        pad = np.zeros(round(WINDOW_S / 2 * 16000), np.float32)
        # Half a window of silence on either side: a step centred on every FRAME_S of the clip.
        return lambda audio: {group: embedding.features(np.concatenate([pad, audio, pad]), OWW_STEPS[group])}
    if group == "v9":
        from kwstream.model.encoder import Encoder, EncoderSettings

        encoder = Encoder(EncoderSettings(model=str(v9_model), threads=1))
        layers = (encoder.layers - 1, encoder.layers)
        return lambda audio: {f"v9_l{layer}": f for layer, f in encoder.encode(audio, layers).features.items()}
    raise ValueError(f"unknown extractor {group!r}")


def clips(corpus: Path, data: Path, cfg: ProbeConfig) -> dict[str, list[tuple[Path, str]]]:
    """Each split's (audio, text): a seeded draw of `cfg.hours` of synthetic training clips, all
    held-out synthetic clips, and the held-out real ones (never trained on)."""
    train = [r for r in read_manifest(corpus / "train.jsonl") if r.source in SYNTHETIC_SOURCES]
    order = np.random.default_rng(cfg.seed).permutation(len(train))
    seconds = np.cumsum([train[i].seconds for i in order])
    chosen = sorted(order[: int(np.searchsorted(seconds, cfg.hours * 3600)) + 1])
    held_out = [r for r in read_manifest(corpus / "eval.jsonl") if r.source in SYNTHETIC_SOURCES]
    return {"train": [(corpus / train[i].path, train[i].text) for i in chosen],
            "synthetic": [(corpus / r.path, r.text) for r in held_out],
            "real": real_dev(data)}


def cache_features(group: str, split: str, rows: list[tuple[Path, str]], cache: Path, v9_model: Path | None) -> Path:
    """One npz per extractor and split: keys, texts, offsets and each candidate's frames (float16)."""
    target = cache / f"{group}_{split}.npz"
    if target.exists():
        with np.load(target, allow_pickle=False) as data:
            if [str(k) for k in data["keys"]] != [str(p) for p, _ in rows]:
                raise ValueError(f"{target} holds other clips (another --hours or corpus?): move it away")
        return target
    extract = extractor(group, v9_model)
    frames: dict[str, list[np.ndarray]] = {name: [] for name in GROUPS[group]}
    for path, _ in tqdm(rows, desc=f"{group} {split}", mininterval=10):
        for name, f in extract(read_audio(path)).items():
            frames[name].append(f.astype(np.float16))
    lengths = np.asarray([len(f) for f in frames[GROUPS[group][0]]], np.int64)
    tmp = target.with_suffix(".tmp.npz")
    np.savez(tmp, keys=np.asarray([str(p) for p, _ in rows]), texts=np.asarray([t for _, t in rows]),
             offsets=np.concatenate([[0], np.cumsum(lengths)]),
             **{name: np.concatenate(f) for name, f in frames.items()})
    os.replace(tmp, target)
    return target


class Frames:
    """One candidate's frames of one split, in memory."""

    def __init__(self, path: Path, candidate: str) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.keys = [str(k) for k in data["keys"]]
            self.texts = [str(t) for t in data["texts"]]
            self.offsets, self.frames = data["offsets"], data[candidate]
        self.lengths = np.diff(self.offsets)
        self.labels = [encode(t) for t in self.texts]
        self.fits = np.asarray([n >= ctc_frames(label) for n, label in zip(self.lengths, self.labels, strict=True)])
        """Clips long enough for their transcript under CTC's rules."""

    def clip(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.frames[self.offsets[i]:self.offsets[i + 1]].astype(np.float32))

    def batch(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded frames, their lengths, the labels concatenated and the label lengths."""
        x = nn.utils.rnn.pad_sequence([self.clip(int(i)) for i in ids], batch_first=True)
        labels = [self.labels[int(i)] for i in ids]
        return (x, torch.as_tensor(self.lengths[ids]), torch.as_tensor(sum(labels, [])),
                torch.as_tensor([len(label) for label in labels]))


def ctc_frames(label: list[int]) -> int:
    """The fewest frames CTC can spell `label` in: one per token, plus a blank between repeats."""
    return len(label) + sum(a == b for a, b in zip(label, label[1:]))


class ProbeHead(nn.Module):
    """Layer norm over the frame, one GELU hidden layer and CTC logits over our letters; the hidden
    width is set so that the head has about `parameters` weights whatever the frame width."""

    def __init__(self, dims: int, parameters: int = HEAD_PARAMETERS) -> None:
        super().__init__()
        vocab = len(VOCAB)
        hidden = max(1, round((parameters - vocab) / (dims + vocab + 1)))
        self.net = nn.Sequential(nn.LayerNorm(dims, elementwise_affine=False), nn.Linear(dims, hidden), nn.GELU(),
                                 nn.Linear(hidden, vocab))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., frames, dims) -> (..., frames, vocab) log-probabilities."""
        return self.net(frames).log_softmax(-1)


def ctc_loss(head: ProbeHead, x: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor,
             label_lengths: torch.Tensor) -> torch.Tensor:
    return nn.functional.ctc_loss(head(x).transpose(0, 1), labels, lengths, label_lengths, blank=PAD_ID,
                                  zero_infinity=True)


def train_head(data: Frames, cfg: ProbeConfig, desc: str) -> ProbeHead:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    head = ProbeHead(data.frames.shape[1])
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps, 0.05))
    usable = np.flatnonzero(data.fits)
    bar = tqdm(range(cfg.steps), desc=desc, mininterval=10)
    for _ in bar:
        loss = ctc_loss(head, *data.batch(rng.choice(usable, cfg.batch_clips, replace=False)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return head.eval()


@torch.no_grad()
def log_probs(head: ProbeHead, data: Frames) -> list[np.ndarray]:
    return [head(data.clip(i)).numpy() for i in range(len(data.texts))]


def greedy_cer(data: Frames, probs: list[np.ndarray], keep: np.ndarray) -> float:
    ids = np.flatnonzero(keep)
    return error_rate([data.texts[i] for i in ids], [decode_ctc(probs[i].argmax(-1).tolist()) for i in ids])


def keyword_scores(texts: list[str], probs: list[np.ndarray], frame_s: float) -> tuple[list[str], np.ndarray]:
    """(keywords, (clips, keywords) scores): every clip's transcript scored as a keyword on every clip."""
    keywords = sorted(set(texts))
    pause = max(1, round(PAUSE_S / frame_s))
    scorer = CtcKeywordScorer(keywords, ENGLISH_CTC_TOKENS, PAD_ID, VOCAB[WORD_DELIMITER], pause_frames=pause)
    silence = np.full((pause, len(VOCAB)), -1e4)
    silence[:, PAD_ID] = 0.0
    scores = np.asarray([[m.score for m in scorer.score(np.concatenate([silence, p, silence]))] for p in probs])
    return keywords, scores


def recall_at(scores: np.ndarray, positive: np.ndarray, false_accept: float) -> float:
    """Share of `positive` clips above the lowest threshold that at most `false_accept` of the others pass."""
    negatives = np.sort(scores[~positive])[::-1]
    allowed = int(np.floor(false_accept * len(negatives)))
    threshold = negatives[allowed] if allowed < len(negatives) else -np.inf
    return float(np.mean(scores[positive] > threshold))


def evaluate(candidate: str, cache: Path, cfg: ProbeConfig) -> dict[str, object]:
    group = group_of(candidate)
    started = time.monotonic()
    train = Frames(cache / f"{group}_train.npz", candidate)
    head = train_head(train, cfg, candidate)
    result: dict[str, object] = {
        "candidate": candidate, "frame_s": FRAME_S[group], "dims": int(train.frames.shape[1]),
        "head_parameters": sum(p.numel() for p in head.parameters()),
        "train_clips": len(train.texts), "train_too_short": int((~train.fits).sum()),
        "train_hours": round(float(train.lengths.sum()) * FRAME_S[group] / 3600, 3)}
    held_out = Frames(cache / f"{group}_synthetic.npz", candidate)
    everything = np.ones(len(held_out.texts), bool)
    result["cer_synthetic"] = round(greedy_cer(held_out, log_probs(head, held_out), everything), 4)
    real = Frames(cache / f"{group}_real.npz", candidate)
    probs = log_probs(head, real)
    keywords, scores = keyword_scores(real.texts, probs, FRAME_S[group])
    texts = np.asarray(real.texts)
    for name, part in (("wake", "/wwb/"), ("theo", "/fsdd/")):
        keep = np.asarray([part in k for k in real.keys])
        result[f"cer_{name}"] = round(greedy_cer(real, probs, keep), 4)
        result[f"{name}_clips"] = int(keep.sum())
        result[f"{name}_too_short"] = int((keep & ~real.fits).sum())
        mine = sorted(set(texts[keep]))
        recalls = {k: recall_at(scores[:, keywords.index(k)], texts == k, cfg.false_accept) for k in mine}
        result[f"recall_{name}"] = round(float(np.mean(list(recalls.values()))), 4)
        result[f"recall_{name}_by_keyword"] = {k: round(v, 3) for k, v in recalls.items()}
    result["seconds"] = round(time.monotonic() - started, 1)
    result["config"] = asdict(cfg)
    return result


def table(results: list[dict[str, object]]) -> str:
    lines = ["| candidate | frame | dims | CER wake phrases | CER theo | CER held-out synthetic voices "
             "| recall wake phrases | recall theo |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['candidate']} | {round(r['frame_s'] * 1000)} ms | {r['dims']} | {r['cer_wake']:.3f} "
                     f"| {r['cer_theo']:.3f} | {r['cer_synthetic']:.3f} | {r['recall_wake']:.2f} "
                     f"| {r['recall_theo']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus folder (train.jsonl, eval.jsonl)")
    parser.add_argument("--data", type=Path, default=SHARED_DATA_DIR)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cached frames and results")
    parser.add_argument("--candidates", default=",".join(c for members in GROUPS.values() for c in members))
    parser.add_argument("--hours", type=float, default=ProbeConfig.hours, help="synthetic training audio")
    parser.add_argument("--steps", type=int, default=ProbeConfig.steps)
    parser.add_argument("--v9-model", type=Path, help="version 9's checkpoint, for the v9 candidates (the bundled model is "
                        "version 10 since 2026-12-05: check out kwstream/assets/model at commit d2e2987)")
    args = parser.parse_args()
    candidates = args.candidates.split(",")
    unknown = [c for c in candidates if not any(c in members for members in GROUPS.values())]
    if unknown:
        parser.error(f"unknown candidates {', '.join(unknown)}")
    if any(group_of(c) == "v9" for c in candidates) and args.v9_model is None:
        parser.error("the v9 candidates need --v9-model (the bundled model is version 10 now)")
    if not (args.corpus / "train.jsonl").is_file():
        parser.error(f"{args.corpus} has no train.jsonl")
    torch.set_num_threads(1)
    cfg = ProbeConfig(hours=args.hours, steps=args.steps)
    args.cache.mkdir(parents=True, exist_ok=True)
    splits = clips(args.corpus, args.data, cfg)
    results, failed = [], []
    for candidate in candidates:
        out = args.cache / f"result_{candidate}_{cfg.hours:g}h_{cfg.steps}steps.json"
        if not out.exists():
            group = group_of(candidate)
            try:
                for split in SPLITS:
                    cache_features(group, split, splits[split], args.cache, args.v9_model)
                result = evaluate(candidate, args.cache, cfg)
            except Exception as error:  # noqa: BLE001 (one extractor failing must not stop the others)
                print(f"{candidate}: failed: {error!r}")
                failed.append(candidate)
                continue
            out.write_text(json.dumps(result, indent=1))
            print(json.dumps(result))
        results.append(json.loads(out.read_text()))
    print(table(results))
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
