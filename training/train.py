"""Train the bundled English wav2vec2 CTC model on the synthetic corpus, from scratch or (--init) from saved weights.

Usage: python -m training.train --corpus DIR --out kwstream/assets/model [--steps N] [--resume] [--export]
       [--init MODEL_DIR] [--distill-weight W]

With --distill-weight, one hidden layer also learns to predict the teacher's features of each clip
(`training.teacher`; build DIR/teacher.npz first), beside the CTC loss.

Checkpoints (last.pt for resume, best/ in safetensors) live outside git in --ckpt-dir; --export
copies the best one, with the processor, into --out and evaluates it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm
from transformers import Wav2Vec2ForCTC

from training.augment import AugmentConfig, Augmenter
from training.corpus import Utterance, read_manifest
from training.distill import PredictionHead, batch_targets, distillation_loss
from training.evaluate import error_rate, evaluate_rows, normalize_audio, transcribe
from training.model import ModelConfig, build_model
from training.teacher import load_features
from training.schedule import warmup_cosine
from training.vocab import SAMPLE_RATE, build_processor, encode

DEFAULT_CKPT_DIR = Path.home() / ".cache" / "kwstream" / "checkpoints"
REAL_SOURCES = ("fsdd", "wwb", "precise")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping settings (saved next to every checkpoint)."""

    steps: int = 5000
    batch_seconds: float = 32.0  # padded audio per batch
    peak_lr: float = 1e-3
    warmup_steps: int = 300
    final_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    real_repeat: int = 3  # the real recordings (REAL_SOURCES) are about an hour; repeat them each epoch
    source_repeat: tuple[tuple[str, int], ...] = ()
    """(source, times) pairs that override the repeat of a source's clips each epoch, real or synthetic."""
    probe_every: int = 50  # steps between greedy-CER probes on a few held-out clips
    probe_size: int = 24
    select_size: int = 300  # held-out clips scored at each checkpoint to pick the best model
    ckpt_minutes: float = 5.0
    seed: int = 0
    distill_weight: float = 0.0  # weight of the teacher-prediction loss beside CTC; 0 = CTC only
    distill_layer: int = 3  # hidden state (0 = the CNN's projection) that predicts the teacher


def repeat_of(source: str, cfg: TrainConfig) -> int:
    """How often a clip of ``source`` comes each epoch."""
    return dict(cfg.source_repeat).get(source, cfg.real_repeat if source in REAL_SOURCES else 1)


class BucketedData:
    """Whole corpus in memory as int16; batches group similar lengths so padding wastes little compute."""

    def __init__(self, corpus: Path, rows: list[Utterance], cfg: TrainConfig) -> None:
        self.rows = rows
        self.audio = [
            sf.read(corpus / r.path, dtype="int16")[0] for r in tqdm(rows, desc="loading audio", leave=False)
        ]
        self.labels = [np.asarray(encode(r.text), dtype=np.int64) for r in rows]
        self.cfg = cfg
        index = [i for i, r in enumerate(rows) for _ in range(repeat_of(r.source, cfg))]
        index.sort(key=lambda i: len(self.audio[i]))
        budget = cfg.batch_seconds * SAMPLE_RATE
        self.batches: list[list[int]] = []
        current: list[int] = []
        for i in index:  # sorted ascending, so the newest item is the longest in its batch
            if current and len(self.audio[i]) * (len(current) + 1) > budget:
                self.batches.append(current)
                current = []
            current.append(i)
        if current:
            self.batches.append(current)

    def batch_for_step(self, step: int) -> list[int]:
        """Deterministic in (seed, step), so a resumed run sees the same data order."""
        epoch, position = divmod(step, len(self.batches))
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.batches))
        return self.batches[order[position]]

    def float_audio(self, i: int) -> np.ndarray:
        return self.audio[i].astype(np.float32) / 32768.0


def collate(audios: list[np.ndarray], labels: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise each clip like the processor, zero-pad audio, pad labels with -100 (ignored by CTC)."""
    x = np.zeros((len(audios), max(len(a) for a in audios)), dtype=np.float32)
    y = np.full((len(labels), max(len(lab) for lab in labels)), -100, dtype=np.int64)
    for row, (a, lab) in enumerate(zip(audios, labels, strict=True)):
        x[row, : len(a)] = normalize_audio(a)
        y[row, : len(lab)] = lab
    return torch.from_numpy(x), torch.from_numpy(y)


def save_checkpoint(path: Path, model: Wav2Vec2ForCTC, head: PredictionHead | None, optimizer: torch.optim.Optimizer,
                    step: int, best_cer: float, cfg: TrainConfig) -> None:
    """Resume state (internal, never shipped); written to a temp file first so a kill cannot corrupt it."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "head": head.state_dict() if head else None,
                "optimizer": optimizer.state_dict(), "step": step, "best_cer": best_cer, "train_config": asdict(cfg)}, tmp)
    os.replace(tmp, path)


def export(best_dir: Path, out: Path, corpus: Path) -> dict[str, float]:
    """Copy the best checkpoint plus processor into `out` (safetensors) and write eval_results.json there."""
    model = Wav2Vec2ForCTC.from_pretrained(best_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    build_processor(out).save_pretrained(out)
    results = evaluate_rows(model, corpus, read_manifest(corpus / "eval.jsonl"))
    meta = json.loads((best_dir / "training_state.json").read_text())
    results = {**results, "step": meta["step"], "parameters": sum(p.numel() for p in model.parameters())}
    (out / "eval_results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def select_rows(rows: list[Utterance], size: int, seed: int, fsdd_share: float = 0.2) -> list[Utterance]:
    """A fixed, seeded sample of held-out clips; FSDD capped at fsdd_share so digits do not dominate."""
    rng = np.random.default_rng(seed)
    fsdd = [r for r in rows if r.source == "fsdd"]
    synthetic = [r for r in rows if r.source != "fsdd"]
    n_fsdd = min(len(fsdd), round(size * fsdd_share))
    n_synth = min(len(synthetic), size - n_fsdd)
    return [fsdd[i] for i in rng.choice(len(fsdd), n_fsdd, replace=False)] + [
        synthetic[i] for i in rng.choice(len(synthetic), n_synth, replace=False)
    ]


def train(corpus: Path, out: Path, ckpt_dir: Path, cfg: TrainConfig, resume: bool, init: Path | None) -> None:
    """Train from random weights, or from `init` (a saved model: a new schedule on top of old training)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model = (Wav2Vec2ForCTC.from_pretrained(init) if init else build_model(ModelConfig())).to(device)
    distill = cfg.distill_weight > 0
    head = PredictionHead(model.config.hidden_size).to(device) if distill else None
    parameters = list(model.parameters()) + (list(head.parameters()) if head else [])
    optimizer = torch.optim.AdamW(parameters, lr=cfg.peak_lr, betas=(0.9, 0.98), eps=1e-8,
                                  weight_decay=cfg.weight_decay)
    step, best_cer = 0, float("inf")
    last_path = ckpt_dir / "last.pt"
    if resume and last_path.exists():
        state = torch.load(last_path, map_location=device)
        model.load_state_dict(state["model"])
        if head is not None:
            head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        step, best_cer = state["step"], state["best_cer"]
        print(f"resumed at step {step}, best held-out CER {best_cer:.4f}")
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", cfg.peak_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps, cfg.final_lr_ratio), last_epoch=step - 1)

    data = BucketedData(corpus, read_manifest(corpus / "train.jsonl"), cfg)
    eval_rows = read_manifest(corpus / "eval.jsonl")
    probe_rows = select_rows(eval_rows, cfg.probe_size, cfg.seed + 1)
    probe_audio = [sf.read(corpus / r.path, dtype="float32")[0] for r in probe_rows]
    select = select_rows(eval_rows, cfg.select_size, cfg.seed + 2)
    babble_pool = [data.float_audio(i) for i in np.random.default_rng(cfg.seed).choice(len(data.audio), 300)]
    augmenter = Augmenter(AugmentConfig(), babble_pool, cfg.seed)
    if distill:
        teacher = load_features(corpus / "teacher.npz")
        every_step = np.concatenate([teacher[r.path] for r in data.rows]).astype(np.float32)
        target_mean, target_std = every_step.mean(axis=0), every_step.std(axis=0) + 1e-6
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params / 1e6:.2f} M parameters, {len(data.rows)} training clips, {len(data.batches)} batches/epoch, "
          f"device {device}, {torch.get_num_threads()} threads")

    def checkpoint() -> None:
        nonlocal best_cer
        results = evaluate_rows(model, corpus, select)
        cer = results["all_cer"]
        tqdm.write(f"step {step}: held-out {json.dumps(results)}")
        if cer < best_cer:
            best_cer = cer
            model.save_pretrained(ckpt_dir / "best")
            state = {"step": step, "select_cer": cer, **results, "train_config": asdict(cfg)}
            (ckpt_dir / "best" / "training_state.json").write_text(json.dumps(state, indent=1))
        save_checkpoint(last_path, model, head, optimizer, step, best_cer, cfg)
        model.train()

    bar = tqdm(total=cfg.steps, initial=step, desc="train", dynamic_ncols=True, mininterval=5)
    loss_ema, distill_ema, probe_cer, last_ckpt = None, float("nan"), float("nan"), time.monotonic()
    model.train()
    while step < cfg.steps:
        batch = data.batch_for_step(step)
        rng = np.random.default_rng([cfg.seed, step, 1])
        augmented = [augmenter.apply(data.float_audio(i), rng) for i in batch]
        x, y = collate([audio for audio, _ in augmented], [data.labels[i] for i in batch])
        result = model(x.to(device), labels=y.to(device), output_hidden_states=distill)
        loss = result.loss
        if distill:
            lengths = [int(model._get_feat_extract_output_lengths(len(audio))) for audio, _ in augmented]
            rows, frames, target = batch_targets([teacher[data.rows[i].path] for i in batch],
                                                 [speed for _, speed in augmented], lengths, target_mean, target_std)
            hidden = result.hidden_states[cfg.distill_layer]
            distilled = distillation_loss(head(hidden[rows.to(device), frames.to(device)]), target.to(device))
            loss = loss + cfg.distill_weight * distilled
            distill_ema = distilled.item() if np.isnan(distill_ema) else 0.98 * distill_ema + 0.02 * distilled.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1
        ctc = result.loss.item()
        loss_ema = ctc if loss_ema is None else 0.98 * loss_ema + 0.02 * ctc
        if step % cfg.probe_every == 0:
            probe_cer = error_rate([r.text for r in probe_rows], transcribe(model, probe_audio))
            model.train()
        bar.set_postfix(loss=f"{loss_ema:.3f}", cer=f"{probe_cer:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}",
                        **({"distill": f"{distill_ema:.3f}"} if distill else {}))
        bar.update()
        if time.monotonic() - last_ckpt > cfg.ckpt_minutes * 60 or step == cfg.steps:
            checkpoint()
            last_ckpt = time.monotonic()
    bar.close()
    print(json.dumps(export(ckpt_dir / "best", out, corpus), indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ckpt-dir", type=Path, default=DEFAULT_CKPT_DIR)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-seconds", type=float, default=TrainConfig.batch_seconds)
    parser.add_argument("--lr", type=float, default=TrainConfig.peak_lr)
    parser.add_argument("--warmup", type=int, default=TrainConfig.warmup_steps)
    parser.add_argument("--ckpt-minutes", type=float, default=TrainConfig.ckpt_minutes)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--distill-weight", type=float, default=TrainConfig.distill_weight,
                        help="weight of predicting the teacher's features (needs CORPUS/teacher.npz); 0 = off")
    parser.add_argument("--distill-layer", type=int, default=TrainConfig.distill_layer)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--resume", action="store_true", help="continue from <ckpt-dir>/last.pt")
    parser.add_argument("--init", type=Path, help="start from this saved model instead of random weights")
    parser.add_argument("--export", action="store_true", help="only export <ckpt-dir>/best to --out and evaluate")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.export:
        print(json.dumps(export(args.ckpt_dir / "best", args.out, args.corpus), indent=1))
        return
    cfg = TrainConfig(steps=args.steps, batch_seconds=args.batch_seconds, peak_lr=args.lr,
                      warmup_steps=args.warmup, ckpt_minutes=args.ckpt_minutes, seed=args.seed,
                      distill_weight=args.distill_weight, distill_layer=args.distill_layer)
    if args.distill_weight > 0 and not (args.corpus / "teacher.npz").is_file():
        parser.error(f"--distill-weight needs {args.corpus / 'teacher.npz'}: python -m training.teacher --corpus ...")
    if args.init and not (args.init / "config.json").is_file():
        parser.error(f"--init {args.init}: no saved model there (config.json missing)")
    train(args.corpus, args.out, args.ckpt_dir, cfg, args.resume, args.init)


if __name__ == "__main__":
    main()
