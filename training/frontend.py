"""Teach a wav2vec2 front end to feed Whisper tiny.en's transplanted blocks what Whisper's own stem would.

Usage: python -m training.frontend [--steps N] [--block-lr LR] [--resume] [--threads 1]

The student is a ``Wav2Vec2ForCTC`` whose transformer starts as Whisper's (``training.whisper_teacher``).
The front end trains: the convolutional feature encoder (its first layer a 25 ms kernel with a 10 ms
stride, initialised as a windowed Fourier basis so that it starts as a spectrogram), the feature
projection and the positional convolution. The loss sits at every block's output (L1 + -log
sigmoid(cosine), as in DistilHuBERT), with a smaller term at the blocks' input: the blocks amplify
front-end errors, so matching the stem alone is not enough (DESIGN.md). With --block-lr above 0 the
blocks train too, at that smaller rate: Whisper's blocks expect absolute positions that a wav2vec2's
relative positional convolution can only supply near a window's start, so they must learn to do
without them, and the per-block targets keep them Whisper's blocks in all else.

Windows start at position 0 for both, as the streaming encoder's windows do. No transcripts are
needed, so every real recording that training may use serves: the crowd's wake phrases and the
digits (less the development shares), mixed at random with ESC-10 noise (folds 1-4). Progress is
the mean cosine to Whisper's frames on held-out real speakers (the wake-phrase development share,
FSDD's theo, the precise community's keyword-free words), logged at every checkpoint; the best front end so far is
saved in ``save_pretrained`` layout.

Checkpoints (every --ckpt-minutes, default 5) go to ~/.cache/kwstream/frontend; --resume continues.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

from kwstream.audio.io import read_audio
from training.augment import add_noise
from training.corpus import FSDD_EVAL_SPEAKERS, SHARED_DATA_DIR, wwb_dev_clip
from training.distill import distillation_loss
from training.evaluate import normalize_audio
from training.schedule import warmup_cosine
from training.stream_shaped import cnn_field
from training.vocab import PAD_ID, VOCAB
from training.whisper_teacher import (SAMPLE_RATE, WhisperTeacher, load_weights, log_mel, block_outputs, transplant,
                                      whisper_wav2vec2_config)

DEFAULT_DIR = Path.home() / ".cache" / "kwstream" / "frontend"
TEACHER_HOP = 320
"""Samples per Whisper frame; frame t is centred on sample 320 t."""


@dataclass(frozen=True)
class FrontEndConfig:
    """The student's front end. The first layer runs at 100 Hz, so it can be wide and still cheap."""

    conv_dim: tuple[int, ...] = (256, 384, 384, 384)
    conv_kernel: tuple[int, ...] = (400, 3, 3, 3)
    conv_stride: tuple[int, ...] = (160, 2, 1, 1)
    num_conv_pos_embeddings: int = 64
    num_conv_pos_embedding_groups: int = 16


@dataclass(frozen=True)
class RunConfig:
    """Optimisation and data settings, saved in every checkpoint."""

    steps: int = 20000
    batch_clips: int = 8
    min_seconds: float = 1.0
    max_seconds: float = 3.0
    peak_lr: float = 1e-3
    warmup_steps: int = 200
    final_lr_ratio: float = 0.05
    stem_weight: float = 0.2
    block_lr: float = 0.0  # 0 keeps Whisper's blocks frozen
    noise_share: float = 0.5
    snr_db: tuple[float, float] = (0.0, 30.0)
    dev_clips: int = 96
    ckpt_minutes: float = 5.0
    seed: int = 0


def build_student(front: FrontEndConfig, weights: dict[str, torch.Tensor]) -> Wav2Vec2ForCTC:
    """A Wav2Vec2ForCTC with Whisper's blocks (frozen) and a Fourier-initialised front end (trainable)."""
    config = whisper_wav2vec2_config(
        vocab_size=len(VOCAB), pad_token_id=PAD_ID, bos_token_id=VOCAB["<s>"], eos_token_id=VOCAB["</s>"],
        conv_dim=list(front.conv_dim), conv_kernel=list(front.conv_kernel), conv_stride=list(front.conv_stride),
        feat_extract_norm="group", num_conv_pos_embeddings=front.num_conv_pos_embeddings,
        num_conv_pos_embedding_groups=front.num_conv_pos_embedding_groups, hidden_dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0, layerdrop=0.0,
        mask_time_prob=0.0, mask_feature_prob=0.0, ctc_loss_reduction="mean", ctc_zero_infinity=True)
    model = Wav2Vec2ForCTC(config)
    transplant(model.wav2vec2.encoder, weights)
    first = model.wav2vec2.feature_extractor.conv_layers[0].conv
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(fourier_basis(front.conv_dim[0], front.conv_kernel[0]))[:, None, :])
    model.requires_grad_(False)
    for part in frontend_parts(model):
        part.requires_grad_(True)
    return model


def frontend_parts(model: Wav2Vec2ForCTC) -> list[nn.Module]:
    return [model.wav2vec2.feature_extractor, model.wav2vec2.feature_projection, model.wav2vec2.encoder.pos_conv_embed]


def fourier_basis(channels: int, kernel: int) -> np.ndarray:
    """(channels, kernel): Hann-windowed cosines and sines at mel-spaced frequencies up to 8 kHz."""
    mel = np.linspace(0.0, 2595 * np.log10(1 + 8000 / 700), channels // 2 + 2)[1:-1]
    hz = 700 * (10 ** (mel / 2595) - 1)
    t = np.arange(kernel) / SAMPLE_RATE
    window = np.hanning(kernel) / np.sqrt(kernel)
    waves = [np.cos(2 * np.pi * f * t) * window for f in hz] + [np.sin(2 * np.pi * f * t) * window for f in hz]
    return np.stack(waves).astype(np.float32)


def receptive_field(front: FrontEndConfig | Wav2Vec2Config) -> tuple[int, int]:
    """(samples one student frame sees, samples between frames): frame j sees [j * hop, j * hop + samples)."""
    return cnn_field(zip(front.conv_kernel, front.conv_stride, strict=True))


def frame_offset(front: FrontEndConfig | Wav2Vec2Config) -> int:
    """Whisper frames between the student's frame 0 and the Whisper frame centred on the same sample."""
    return round((receptive_field(front)[0] - 1) / 2 / TEACHER_HOP)


def student_forward(model: Wav2Vec2ForCTC, audio: torch.Tensor) -> list[torch.Tensor]:
    """The blocks' input, then each block's output, of the student on normalised audio: the wav2vec2
    shell's own path."""
    w2v = model.wav2vec2
    features = w2v.feature_extractor(audio).transpose(1, 2)
    hidden, _ = w2v.feature_projection(features)
    hidden = hidden + w2v.encoder.pos_conv_embed(hidden)
    return [hidden, *block_outputs(w2v.encoder, hidden)]


def speech_files(data: Path) -> tuple[list[Path], list[Path]]:
    """(training, development) recordings: development speakers and phrases never train."""
    train, dev = [], []
    for path in sorted((data / "wwb").glob("*/*.flac")):
        (dev if wwb_dev_clip(path) else train).append(path)
    for path in sorted((data / "fsdd" / "recordings").glob("*.wav")):
        (dev if path.stem.split("_")[1] in FSDD_EVAL_SPEAKERS else train).append(path)
    dev += sorted((data / "precise" / "not-wake-words").rglob("*.flac"))  # its wake words train (``training.corpus``)
    return train, dev


def noise_files(data: Path) -> list[Path]:
    """ESC-10 folds 1-4 (fold 5 stays out for evaluation)."""
    return [p for p in sorted((data / "esc10").glob("*/*.ogg")) if not p.name.startswith("5-")]


def crop(audio: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """A `samples`-long stretch of `audio`, padded with silence at its end when the clip is shorter."""
    if len(audio) > samples:
        start = int(rng.integers(0, len(audio) - samples + 1))
        return audio[start:start + samples]
    return np.pad(audio, (0, samples - len(audio)))


def make_batch(clips: list[np.ndarray], noises: list[np.ndarray], cfg: RunConfig,
               rng: np.random.Generator) -> np.ndarray:
    """(batch, samples) raw float audio, one length per batch, some with noise mixed in."""
    samples = int(rng.uniform(cfg.min_seconds, cfg.max_seconds) * SAMPLE_RATE) // TEACHER_HOP * TEACHER_HOP
    rows = []
    for i in rng.choice(len(clips), cfg.batch_clips, replace=False):
        audio = crop(clips[i], samples, rng)
        if rng.random() < cfg.noise_share:
            noise = crop(noises[int(rng.integers(len(noises)))], samples, rng)
            audio = add_noise(audio, noise, float(rng.uniform(*cfg.snr_db)))
        rows.append(audio * float(10 ** rng.uniform(-1.5, 0)) / (np.abs(audio).max() + 1e-9))
    return np.stack(rows).astype(np.float32)


def normalised(batch: np.ndarray) -> torch.Tensor:
    """What the processor does to each window before the student sees it."""
    return torch.from_numpy(np.stack([normalize_audio(a) for a in batch]))


def teacher_targets(teacher: WhisperTeacher, raw: torch.Tensor, blocks: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Whisper's stem output, then each block's output (those of ``blocks`` only, a smaller student's
    ``training.drop_block.teacher_blocks``), on raw audio (batch, samples)."""
    with torch.no_grad():
        stem = teacher.stem(log_mel(raw, teacher.filters))
        outputs = block_outputs(teacher.encoder, stem)
        return [stem, *(outputs if blocks is None else [outputs[b] for b in blocks])]


def distillation_terms(outputs: list[torch.Tensor], targets: list[torch.Tensor],
                       offset: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss over the blocks' outputs, loss at the blocks' input, mean cosine of the encoder's output),
    the student's frames aligned to the teacher's by `offset`."""
    frames = min(outputs[0].shape[1], targets[0].shape[1] - offset)
    pairs = [(o[:, :frames], t[:, offset:offset + frames]) for o, t in zip(outputs, targets, strict=True)]
    cosine = nn.functional.cosine_similarity(*pairs[-1], dim=-1).mean()
    blocks = torch.stack([distillation_loss(o, t) for o, t in pairs[1:]]).mean()
    return blocks, distillation_loss(*pairs[0]), cosine


def losses(model: Wav2Vec2ForCTC, teacher: WhisperTeacher, batch: np.ndarray,
           offset: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`distillation_terms` of the student against Whisper on one batch of equal-length raw clips."""
    targets = teacher_targets(teacher, torch.from_numpy(batch))
    return distillation_terms(student_forward(model, normalised(batch)), targets, offset)


@torch.no_grad()
def dev_cosine(model: Wav2Vec2ForCTC, teacher: WhisperTeacher, clips: list[np.ndarray], offset: int) -> float:
    """Mean cosine to Whisper's frames over held-out clips, each from its start (at most 3 s), one at a time."""
    model.eval()
    values = [losses(model, teacher, clip[None, : 3 * SAMPLE_RATE // TEACHER_HOP * TEACHER_HOP], offset)[2].item()
              for clip in clips]
    model.train()
    return float(np.mean(values))


def save_state(path: Path, model: Wav2Vec2ForCTC, optimizer: torch.optim.Optimizer, step: int, best: float,
               cfg: RunConfig, front: FrontEndConfig) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "best": best,
                "run_config": asdict(cfg), "frontend_config": asdict(front)}, tmp)
    os.replace(tmp, path)


def train(out_dir: Path, data: Path, cfg: RunConfig, front: FrontEndConfig, resume: bool) -> None:
    torch.manual_seed(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = load_weights()
    teacher = WhisperTeacher(weights)
    model = build_student(front, weights)
    groups = [{"params": [p for part in frontend_parts(model) for p in part.parameters()], "lr": cfg.peak_lr}]
    if cfg.block_lr > 0:
        model.wav2vec2.encoder.layers.requires_grad_(True)
        model.wav2vec2.encoder.layer_norm.requires_grad_(True)
        groups.append({"params": [*model.wav2vec2.encoder.layers.parameters(),
                                  *model.wav2vec2.encoder.layer_norm.parameters()], "lr": cfg.block_lr})
    parameters = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.98), weight_decay=0.01)
    step, best = 0, -1.0
    last = out_dir / "last.pt"
    if resume and last.exists():
        state = torch.load(last, map_location="cpu")
        model.load_state_dict(state["model"])
        step, best = state["step"], state["best"]
        if len(state["optimizer"]["param_groups"]) == len(groups):
            optimizer.load_state_dict(state["optimizer"])
        else:  # the blocks were frozen until now: a fresh optimizer for the new set of parameters
            print("the trainable parameters changed: the optimizer starts afresh")
        print(f"resumed at step {step}, best development cosine {best:.4f}")
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps, cfg.final_lr_ratio), last_epoch=step - 1)

    train_files, dev_files = speech_files(data)
    clips = [read_audio(p) for p in tqdm(train_files, desc="loading speech", leave=False)]
    noises = [read_audio(p) for p in tqdm(noise_files(data), desc="loading noise", leave=False)]
    pick = np.random.default_rng(cfg.seed + 1).choice(len(dev_files), min(cfg.dev_clips, len(dev_files)), replace=False)
    dev = [read_audio(dev_files[i]) for i in sorted(pick)]
    offset = frame_offset(front)
    trainable = sum(p.numel() for p in parameters)
    total = sum(p.numel() for p in model.parameters())
    print(f"front end {trainable / 1e6:.2f} M trainable parameters of {total / 1e6:.2f} M; "
          f"{len(clips)} training clips ({sum(map(len, clips)) / SAMPLE_RATE / 3600:.2f} h), {len(noises)} noises, "
          f"{len(dev)} development clips; frame offset {offset}; {torch.get_num_threads()} threads", flush=True)
    log = (out_dir / "log.jsonl").open("a")

    def checkpoint() -> None:
        nonlocal best
        cosine = dev_cosine(model, teacher, dev, offset)
        if cosine > best:
            best = cosine
            model.save_pretrained(out_dir / "best")
            (out_dir / "best" / "frontend_state.json").write_text(
                json.dumps({"step": step, "dev_cosine": cosine, "frontend_config": asdict(front)}, indent=1))
        save_state(last, model, optimizer, step, best, cfg, front)
        record = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "dev_cosine": round(cosine, 4),
                  "best": round(best, 4), "train_cosine_ema": round(cosine_ema, 4), "loss_ema": round(loss_ema, 4)}
        log.write(json.dumps(record) + "\n")
        log.flush()
        tqdm.write(json.dumps(record))

    bar = tqdm(total=cfg.steps, initial=step, desc="front end", mininterval=10, dynamic_ncols=True)
    loss_ema, cosine_ema, last_ckpt = float("nan"), float("nan"), time.monotonic()
    model.train()
    if step == 0:
        checkpoint()
    while step < cfg.steps:
        rng = np.random.default_rng([cfg.seed, step])
        out_loss, stem_loss, cosine = losses(model, teacher, make_batch(clips, noises, cfg, rng), offset)
        loss = out_loss + cfg.stem_weight * stem_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        loss_ema = loss.item() if math.isnan(loss_ema) else 0.98 * loss_ema + 0.02 * loss.item()
        cosine_ema = cosine.item() if math.isnan(cosine_ema) else 0.98 * cosine_ema + 0.02 * cosine.item()
        bar.set_postfix(loss=f"{loss_ema:.3f}", cos=f"{cosine_ema:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
        bar.update()
        if time.monotonic() - last_ckpt > cfg.ckpt_minutes * 60 or step == cfg.steps:
            checkpoint()
            last_ckpt = time.monotonic()
    bar.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="checkpoints, log.jsonl and best/")
    parser.add_argument("--data", type=Path, default=SHARED_DATA_DIR, help="the shared recordings folder")
    parser.add_argument("--steps", type=int, default=RunConfig.steps)
    parser.add_argument("--batch-clips", type=int, default=RunConfig.batch_clips)
    parser.add_argument("--lr", type=float, default=RunConfig.peak_lr)
    parser.add_argument("--block-lr", type=float, default=RunConfig.block_lr,
                        help="learning rate of Whisper's blocks (0: frozen)")
    parser.add_argument("--ckpt-minutes", type=float, default=RunConfig.ckpt_minutes)
    parser.add_argument("--dev-clips", type=int, default=RunConfig.dev_clips)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = RunConfig(steps=args.steps, batch_clips=args.batch_clips, peak_lr=args.lr, block_lr=args.block_lr,
                    ckpt_minutes=args.ckpt_minutes, dev_clips=args.dev_clips)
    train(args.out, args.data, cfg, FrontEndConfig(), args.resume)


if __name__ == "__main__":
    main()
