"""Train v10's top on Whisper's own frames: its last block, final norm and a CTC head over our letters.

Usage: python -m training.whisper_head --corpus DIR [--run NAME] [--block-lr LR] [--steps N] [--resume]
       python -m training.whisper_head --assemble FRONTEND_DIR [--run NAME] --out MODEL_DIR
       python -m training.whisper_head --real-cer MODEL_DIR   (any Wav2Vec2ForCTC, from raw audio)

What Whisper tiny.en's encoder learned from real speech is kept: the first three blocks stay
frozen, and the last block is fine-tuned beside a new linear CTC head with a term that keeps its
output near Whisper's (so that synthetic speech does not wash out what real speech taught). The
input of the last block is computed once per clip and cached (float16), clean and with ESC-10
noise mixed in, so training costs one block per frame.

With --block-lr 0 the block stays Whisper's and only the head trains: a linear probe of what
Whisper's frames say about our letters. Progress is greedy CER on the corpus's held-out voices and
on held-out REAL speakers (the crowd's wake-phrase development share, FSDD's theo). ``--assemble``
puts the best top on a front end trained by ``training.frontend`` and writes a complete
``Wav2Vec2ForCTC`` with its processor.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import Wav2Vec2ForCTC

from kwstream.audio.io import read_audio
from training.augment import add_noise
from training.corpus import SHARED_DATA_DIR, read_manifest
from training.distill import distillation_loss
from training.evaluate import error_rate, transcribe
from training.frontend import crop, noise_files, speech_files
from training.schedule import warmup_cosine
from training.texts import DIGITS
from training.vocab import PAD_ID, VOCAB, build_processor, decode_ctc, encode, normalize_text
from training.whisper_teacher import WIDTH, WhisperTeacher, log_mel, run_layer

DEFAULT_DIR = Path.home() / ".cache" / "kwstream" / "whisper_head"
TOP = 3
"""Index of the block that is fine-tuned; the blocks below it stay Whisper's."""


@dataclass(frozen=True)
class HeadConfig:
    steps: int = 4000
    batch_frames: int = 6000  # about two minutes of audio per step
    head_lr: float = 2e-3
    block_lr: float = 2e-4
    warmup_steps: int = 200
    distill_weight: float = 1.0
    noise_snr_db: tuple[float, float] = (0.0, 20.0)
    eval_every: int = 250
    seed: int = 0


class Top(nn.Module):
    """The last block, the final norm and the CTC head, on the last block's input."""

    def __init__(self, teacher: WhisperTeacher) -> None:
        super().__init__()
        self.block = copy.deepcopy(teacher.encoder.layers[TOP])
        self.norm = copy.deepcopy(teacher.encoder.layer_norm)
        self.head = nn.Linear(WIDTH, len(VOCAB))
        self.block.requires_grad_(True)
        self.norm.requires_grad_(True)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(top output, CTC logits)."""
        out = block_and_norm(self.block, self.norm, hidden)
        return out, self.head(out)


def block_and_norm(block: nn.Module, norm: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    return norm(run_layer(block, hidden))


@torch.no_grad()
def below_top(teacher: WhisperTeacher, audio: np.ndarray) -> np.ndarray:
    """(frames, 384) float16: the input of Whisper's last block for one clip, positions from 0."""
    hidden = teacher.stem(log_mel(torch.from_numpy(audio.astype(np.float32))[None], teacher.filters))
    for layer in teacher.encoder.layers[:TOP]:
        hidden = run_layer(layer, hidden)
    return hidden[0].numpy().astype(np.float16)


def real_dev(data: Path) -> list[tuple[Path, str]]:
    """Held-out real speech with transcripts: the front end's development recordings less the
    untranscribed precise ones (the wake-phrase development share and FSDD's theo)."""
    rows = []
    for path in speech_files(data)[1]:
        if "wwb" in path.parts:
            rows.append((path, normalize_text(path.parent.name.replace("_", " "))))
        elif "fsdd" in path.parts:
            rows.append((path, normalize_text(DIGITS[int(path.stem.split("_")[0])])))
    return rows


def build_cache(corpus: Path, data: Path, out: Path, cfg: HeadConfig) -> None:
    """One npz per split: keys, texts, offsets and the frames (float16). Train gets a noisy copy of each clip."""
    teacher = WhisperTeacher()
    noises = [read_audio(p) for p in noise_files(data)]
    rng = np.random.default_rng(cfg.seed)
    splits = {
        "train": [(corpus / r.path, r.text) for r in read_manifest(corpus / "train.jsonl")],
        "eval": [(corpus / r.path, r.text) for r in read_manifest(corpus / "eval.jsonl")],
        "real": real_dev(data),
    }
    for split, rows in splits.items():
        target = out / f"{split}.npz"
        if target.exists():
            continue
        keys, texts, frames = [], [], []
        for path, text in tqdm(rows, desc=f"caching {split}"):
            audio = read_audio(path)
            versions = [("clean", audio)]
            if split == "train":
                noise = crop(noises[int(rng.integers(len(noises)))], len(audio), rng)
                versions.append(("noisy", add_noise(audio, noise, float(rng.uniform(*cfg.noise_snr_db)))))
            for tag, version in versions:
                keys.append(f"{path}#{tag}")
                texts.append(text)
                frames.append(below_top(teacher, version))
        lengths = np.asarray([len(f) for f in frames], np.int64)
        tmp = target.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.asarray(keys), texts=np.asarray(texts),
                 offsets=np.concatenate([[0], np.cumsum(lengths)]), frames=np.concatenate(frames))
        os.replace(tmp, target)


class Cached:
    """A split of the cache in memory, with batches of similar lengths."""

    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.texts = [str(t) for t in data["texts"]]
            self.offsets, self.frames = data["offsets"], data["frames"]
        self.lengths = np.diff(self.offsets)

    def clip(self, i: int) -> np.ndarray:
        return self.frames[self.offsets[i]:self.offsets[i + 1]]

    def batches(self, batch_frames: int) -> list[list[int]]:
        order = np.argsort(self.lengths, kind="stable")
        batches, current = [], []
        for i in order:
            if current and self.lengths[i] * (len(current) + 1) > batch_frames:
                batches.append(current)
                current = []
            current.append(int(i))
        return batches + ([current] if current else [])

    def padded(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, longest, 384) float32 frames (zeros after each clip) and the clips' lengths."""
        lengths = torch.as_tensor(self.lengths[ids])
        x = torch.zeros(len(ids), int(lengths.max()), WIDTH)
        for row, i in enumerate(ids):
            x[row, : lengths[row]] = torch.from_numpy(self.clip(i).astype(np.float32))
        return x, lengths


@torch.no_grad()
def greedy_cer(top: Top, split: Cached) -> float:
    top.eval()
    hyps = []
    for i in range(len(split.texts)):
        _, logits = top(torch.from_numpy(split.clip(i).astype(np.float32))[None])
        hyps.append(decode_ctc(logits[0].argmax(-1).tolist()))
    top.train()
    return error_rate(split.texts, hyps)


def train(cache: Path, run: Path, cfg: HeadConfig, resume: bool) -> None:
    torch.manual_seed(cfg.seed)
    teacher = WhisperTeacher()
    top = Top(teacher)
    groups = [{"params": list(top.head.parameters()), "lr": cfg.head_lr}]
    if cfg.block_lr > 0:
        groups.append({"params": [*top.block.parameters(), *top.norm.parameters()], "lr": cfg.block_lr})
    else:
        top.block.requires_grad_(False)
        top.norm.requires_grad_(False)
    optimizer = torch.optim.AdamW(groups)
    step, best = 0, float("inf")
    run.mkdir(parents=True, exist_ok=True)
    if resume and (run / "last.pt").exists():
        state = torch.load(run / "last.pt")
        top.load_state_dict(state["top"])
        optimizer.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best"]
        print(f"resumed at step {step}, best real CER {best:.4f}")
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])

    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps, 0.05), last_epoch=step - 1)
    data, held_out, real = (Cached(cache / f"{s}.npz") for s in ("train", "eval", "real"))
    labels = [torch.as_tensor(encode(t)) for t in data.texts]
    batches = data.batches(cfg.batch_frames)
    log = (run / "log.jsonl").open("a")
    ctc = nn.CTCLoss(blank=PAD_ID, zero_infinity=True)
    bar = tqdm(total=cfg.steps, initial=step, desc="whisper head", mininterval=10)
    ema = float("nan")
    while step < cfg.steps:
        epoch, position = divmod(step, len(batches))
        ids = batches[np.random.default_rng([cfg.seed, epoch]).permutation(len(batches))[position]]
        x, lengths = data.padded(ids)
        out, logits = top(x)
        with torch.no_grad():
            reference = block_and_norm(teacher.encoder.layers[TOP], teacher.encoder.layer_norm, x)
        mask = torch.arange(x.shape[1])[None] < lengths[:, None]
        targets = [labels[i] for i in ids]
        loss = ctc(logits.log_softmax(-1).transpose(0, 1), torch.cat(targets), lengths,
                   torch.as_tensor([len(t) for t in targets]))
        loss = loss + cfg.distill_weight * distillation_loss(out[mask], reference[mask])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(top.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        ema = loss.item() if math.isnan(ema) else 0.98 * ema + 0.02 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}")
        bar.update()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "loss_ema": round(ema, 4),
                      "synthetic_cer": round(greedy_cer(top, held_out), 4), "real_cer": round(greedy_cer(top, real), 4)}
            if record["real_cer"] < best:
                best = record["real_cer"]
                torch.save({"top": top.state_dict(), "step": step, **record}, run / "best.pt")
            torch.save({"top": top.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "best": best,
                        "config": asdict(cfg)}, run / "last.pt")
            log.write(json.dumps(record) + "\n")
            log.flush()
            tqdm.write(json.dumps(record))
    bar.close()


def assemble(frontend_dir: Path, run: Path, out: Path) -> None:
    """The front end's model with the trained top: a complete Wav2Vec2ForCTC plus processor in `out`."""
    model = Wav2Vec2ForCTC.from_pretrained(frontend_dir)
    top = Top(WhisperTeacher())
    top.load_state_dict(torch.load(run / "best.pt")["top"])
    encoder = model.wav2vec2.encoder
    encoder.layers[TOP].load_state_dict(top.block.state_dict())
    encoder.layer_norm.load_state_dict(top.norm.state_dict())
    model.lm_head.load_state_dict(top.head.state_dict())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    build_processor(out).save_pretrained(out)


def real_cer(model_dir: Path, data: Path) -> dict[str, float]:
    """Greedy CER of a whole model, from raw audio, on the held-out real clips, per source."""
    model = Wav2Vec2ForCTC.from_pretrained(model_dir)
    rows = real_dev(data)
    hyps = transcribe(model, [read_audio(path) for path, _ in rows])
    results = {}
    for name, keep in (("wwb", lambda p: "wwb" in p.parts), ("fsdd_theo", lambda p: "fsdd" in p.parts)):
        idx = [i for i, (path, _) in enumerate(rows) if keep(path)]
        results[f"{name}_cer"] = round(error_rate([rows[i][1] for i in idx], [hyps[i] for i in idx]), 4)
        results[f"{name}_n"] = len(idx)
    results["all_cer"] = round(error_rate([t for _, t in rows], hyps), 4)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="a corpus folder (train.jsonl, eval.jsonl)")
    parser.add_argument("--data", type=Path, default=SHARED_DATA_DIR)
    parser.add_argument("--cache", type=Path, default=DEFAULT_DIR, help="cached frames, checkpoints and log")
    parser.add_argument("--run", default="top", help="this run's folder under --cache (checkpoints, log)")
    parser.add_argument("--block-lr", type=float, default=HeadConfig.block_lr, help="0: train the head alone")
    parser.add_argument("--steps", type=int, default=HeadConfig.steps)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--assemble", type=Path, metavar="FRONTEND_DIR", help="write a whole model to --out")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--real-cer", type=Path, metavar="MODEL_DIR", help="print a model's CER on the real clips")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = HeadConfig(steps=args.steps, block_lr=args.block_lr)
    if args.real_cer:
        print(json.dumps(real_cer(args.real_cer, args.data)))
        return
    if args.assemble:
        if not args.out:
            parser.error("--assemble needs --out")
        assemble(args.assemble, args.cache / args.run, args.out)
        return
    if not args.corpus:
        parser.error("--corpus is required to train")
    args.cache.mkdir(parents=True, exist_ok=True)
    build_cache(args.corpus, args.data, args.cache, cfg)
    train(args.cache, args.cache / args.run, cfg, args.resume)


if __name__ == "__main__":
    main()
