"""Fine-tune a whole v10 student end to end: CTC on the corpus, with Whisper tiny.en still its teacher.

Usage: python -m training.finetune --corpus DIR [--corpus DIR2 ...] --init MODEL_DIR [--steps N] [--resume] [--threads 1]

The assembled candidate (front end from ``training.frontend``, top from ``training.whisper_head``)
reads Whisper's own frames at CER 0.21 but the student's at 0.48: its head never saw the frames the
student gives. Here every part trains on the student's own frames: CTC on augmented corpus clips
(synthetic voices and the real wake phrases, wake words and digits; ``training.augment``), and, on the same audio,
the front end's distillation loss at every block's output against what Whisper's encoder gives, so
that what Whisper learned from real speech is not washed out by synthetic voices.

The best model is chosen on development data only: the mean of greedy CER from raw audio on
held-out REAL speakers (the wake-phrase development share, FSDD's theo) and on the corpus's
held-out synthetic clips. Checkpoints every --ckpt-minutes go to ~/.cache/kwstream/finetune;
--resume continues; best/ is a complete model with its processor, and so is last/ at the run's end
(``--export-last`` writes it from the last checkpoint of a run that stopped before).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import Wav2Vec2ForCTC

from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.model.checkpoint_files import fixed_statistics
from kwstream.stream.pipeline import PipelineSettings
from training.augment import AugmentConfig, Augmenter
from training.corpus import SHARED_DATA_DIR, Utterance, read_manifest
from training.evaluate import error_rate, evaluate_rows, transcribe
from training.drop_block import teacher_blocks
from training.embedding_teacher import EmbeddingTeacher
from training.fake_int8 import make_int8_aware
from training.fixed_statistics import fix_statistics
from training.frontend import distillation_terms, frame_offset, student_forward, teacher_targets
from training.schedule import warmup_cosine
from training.stream_shaped import StreamShape, transcribe_streamed
from training.train import REAL_SOURCES, BucketedData, TrainConfig, collate, select_rows
from training.vocab import PAD_ID, build_processor
from training.whisper_head import real_dev
from training.whisper_teacher import WhisperTeacher

DEFAULT_DIR = Path.home() / ".cache" / "kwstream" / "finetune"


@dataclass(frozen=True)
class FinetuneConfig:
    """Optimisation settings, saved in every checkpoint."""

    steps: int = 2600
    batch_seconds: float = 32.0
    head_lr: float = 5e-4
    body_lr: float = 1e-4  # front end and blocks: they start near Whisper, keep them there
    warmup_steps: int = 150
    final_lr_ratio: float = 0.05
    distill_weight: float = 1.0
    stem_weight: float = 0.2
    real_repeat: int = 3
    source_repeat: tuple[tuple[str, int], ...] = ()  # per-source repeats each epoch (``--repeat SOURCE=N``)
    select_real: int = 300
    select_synthetic: int = 200
    ckpt_minutes: float = 8.0
    seed: int = 0
    int8_aware: bool = False  # train through int8 rounding (training.fake_int8), for `--int8`
    fixed_statistics: bool = False  # the CNN normalises every input alike (training.fixed_statistics)
    streamed: float = 0.0  # share of steps that train what `kwstream listen` computes (training.stream_shaped)
    stream_lead: float = 0.0  # seconds: up to this much quiet before a streamed clip, as a span opens before its word
    band_limit: float = AugmentConfig.p_band_limit  # share of clips heard through 8 kHz (telephone) bandwidth
    embedding_weight: float = 0.0  # openWakeWord's speech embedding as a second teacher (training.embedding_teacher)
    embedding_block: int = 2  # the block whose output predicts it


def with_lead(clip: np.ndarray, most_seconds: float, rng: np.random.Generator) -> np.ndarray:
    """``clip`` after 0 to ``most_seconds`` of quiet (before augmentation, so the quiet gets the clip's room and noise).

    A stream's span opens a pre-roll (0.3 s) before the VAD hears a word, and the chunk grid starts there, so a short word
    lands wherever the quiet before it puts it; clips streamed from their first sample give only their own lead (FSDD and
    espeak-ng about 10 ms, the other voices 0.18 s). Version 12 on theo's digits with the pre-roll set to 0.15 / 0.2 / 0.3 /
    0.4 s: recall 0.48 / 0.60 / 0.64 / 0.66, single digits moving 0.06 -> 0.94 (docs/model-v10-runs.md, *Run 20*)."""
    quiet = int(rng.uniform(0.0, most_seconds) * SAMPLE_RATE)
    return np.concatenate([np.zeros(quiet, np.float32), clip]) if quiet else clip


def batch_losses(model: Wav2Vec2ForCTC, teacher: WhisperTeacher, audios: list[np.ndarray],
                 labels: list[np.ndarray], offset: int, cfg: FinetuneConfig,
                 stream: StreamShape | None = None, embedding: EmbeddingTeacher | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss on one batch of augmented clips, on the student's frames of the whole clips
    or, given ``stream``, on those a stream of that shape makes of them; and its parts for the log.
    ``embedding``: the second teacher, weighted by ``cfg.embedding_weight``."""
    x, y = collate(audios, labels)
    raw = torch.zeros_like(x)
    for row, audio in enumerate(audios):
        raw[row, : len(audio)] = torch.from_numpy(audio)
    outputs = student_forward(model, x) if stream is None else stream.forward(model, raw)
    log_probs = model.lm_head(outputs[-1]).log_softmax(-1)
    mask = y >= 0
    ctc = nn.functional.ctc_loss(log_probs.transpose(0, 1), y[mask], torch.full((len(audios),), log_probs.shape[1]),
                                 mask.sum(-1), blank=PAD_ID, zero_infinity=True)
    blocks, stem, cosine = distillation_terms(outputs, teacher_targets(teacher, raw, teacher_blocks(model)), offset)
    loss = ctc + cfg.distill_weight * (blocks + cfg.stem_weight * stem)
    parts = {"ctc": ctc.item(), "distill": blocks.item(), "cosine": cosine.item()}
    if embedding is not None:
        second = embedding.loss(outputs, audios)
        loss = loss + cfg.embedding_weight * second
        parts["embedding"] = second.item()
    return loss, parts


def select_score(model: Wav2Vec2ForCTC, corpus: Path, synthetic: list, real: list[tuple[Path, str]],
                 real_audio: list[np.ndarray], streamed: bool) -> dict[str, float]:
    """Greedy CER on the held-out real speakers (whole clips, and as a stream reads them) and on the
    held-out synthetic clips; `score`, the mean of the real and synthetic CER, takes the streamed
    real CER when ``streamed`` (a run that trains for streams is chosen on them)."""
    refs = [text for _, text in real]
    real_cer = error_rate(refs, transcribe(model, real_audio))
    streamed_cer = error_rate(refs, transcribe_streamed(model, real_audio, StreamShape.of(PipelineSettings())))
    synthetic_cer = evaluate_rows(model, corpus, synthetic)["all_cer"]
    model.train()
    chosen = streamed_cer if streamed else real_cer
    return {"real_cer": round(real_cer, 4), "real_streamed_cer": round(streamed_cer, 4),
            "synthetic_cer": round(synthetic_cer, 4), "score": round((chosen + synthetic_cer) / 2, 4)}


def save_state(path: Path, model: Wav2Vec2ForCTC, optimizer: torch.optim.Optimizer, step: int, best: float,
               cfg: FinetuneConfig, embedding: EmbeddingTeacher | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "best": best,
                "config": asdict(cfg), "embedding": None if embedding is None else embedding.state_dict()}, tmp)
    os.replace(tmp, path)


def save_model(model: Wav2Vec2ForCTC, folder: Path, record: dict, config: dict) -> None:
    """A complete model (weights, processor) in ``folder``, with the development scores it was saved at and the
    run's configuration (``asdict(FinetuneConfig)``)."""
    model.save_pretrained(folder)
    build_processor(folder).save_pretrained(folder)
    (folder / "finetune_state.json").write_text(json.dumps({**record, "config": config}, indent=1))


def export_last(init: Path, out: Path) -> Path:
    """OUT/last/: the model in OUT/last.pt (a run stopped early, or one that ended before runs wrote ``last/``),
    with the last development scores of OUT/log.jsonl."""
    state = torch.load(out / "last.pt", map_location="cpu")
    model = Wav2Vec2ForCTC.from_pretrained(init)
    if state["config"].get("int8_aware"):
        make_int8_aware(model)
    model.load_state_dict(state["model"])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    record = next((r for r in reversed(records) if r["step"] == state["step"]), {"step": state["step"]})
    save_model(model, out / "last", record, state["config"])
    return out / "last"


def training_rows(corpora: list[Path]) -> list[Utterance]:
    """Every corpus's synthetic clips; the first corpus's real ones, and from each later corpus only
    real sources that no earlier one holds (corpora copy the same shared recordings, and a later one
    may be a real source alone: ``training.corpus --hours 0 --fsdd '' --wwb ''``); paths made absolute."""
    rows, real_sources = [], set()
    for corpus in corpora:
        manifest = read_manifest(corpus / "train.jsonl")
        new_sources = {r.source for r in manifest if r.source in REAL_SOURCES} - real_sources
        rows += [replace(r, path=str(corpus.resolve() / r.path)) for r in manifest
                 if r.source not in REAL_SOURCES or r.source in new_sources]
        real_sources |= new_sources
    return rows


def train(corpora: list[Path], init: Path, out: Path, data: Path, cfg: FinetuneConfig, resume: bool) -> None:
    """Fine-tune on ``corpora`` (development clips from the first one's eval.jsonl)."""
    corpus = corpora[0]
    torch.manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    model = Wav2Vec2ForCTC.from_pretrained(init)
    model.requires_grad_(True)
    if cfg.streamed > 0 and (cfg.fixed_statistics or fixed_statistics(model.config.to_dict()) is not None):
        raise SystemExit("--streamed trains each chunk's own first-layer statistics; this model has fixed ones")
    if cfg.int8_aware:
        print(f"int8-aware: {make_int8_aware(model)} linear layers see int8 rounding")
    teacher = WhisperTeacher()
    head = list(model.lm_head.parameters())
    body = [p for name, p in model.named_parameters() if not name.startswith("lm_head.")]
    embedding = EmbeddingTeacher(model.config, cfg.embedding_block) if cfg.embedding_weight > 0 else None
    groups = [{"params": head, "lr": cfg.head_lr}, {"params": body, "lr": cfg.body_lr}]
    groups += [] if embedding is None else [{"params": list(embedding.parameters()), "lr": cfg.head_lr}]
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.98), weight_decay=0.01)
    step, best = 0, float("inf")
    last = out / "last.pt"
    if resume and last.exists():
        state = torch.load(last, map_location="cpu")
        compared = ("streamed", "stream_lead", "fixed_statistics", "int8_aware", "embedding_weight") + (("embedding_block",) if embedding else ())
        changed = [k for k in compared if state["config"].get(k, getattr(FinetuneConfig, k)) != getattr(cfg, k)]
        if changed:
            raise SystemExit(f"--resume: {', '.join(changed)} differ from the run's ({last}); its best score meant another thing")
        model.load_state_dict(state["model"])
        if embedding is not None:
            embedding.load_state_dict(state["embedding"])
        optimizer.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best"]
        print(f"resumed at step {step}, best development score {best:.4f}")
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps, cfg.final_lr_ratio), last_epoch=step - 1)

    batching = TrainConfig(batch_seconds=cfg.batch_seconds, real_repeat=cfg.real_repeat,
                           source_repeat=cfg.source_repeat, seed=cfg.seed)
    clips = training_rows(corpora)
    sources = {r.source for r in clips}
    missing = {source for source, _ in cfg.source_repeat} - sources
    if missing:
        raise SystemExit(f"--repeat: no training clips from {', '.join(sorted(missing))} (sources: {', '.join(sorted(sources))})")
    dataset = BucketedData(corpus, clips, batching)
    synthetic = [r for r in select_rows(read_manifest(corpus / "eval.jsonl"), cfg.select_synthetic, cfg.seed + 2)
                 if r.source != "fsdd"]
    rows = real_dev(data)
    real = [rows[i] for i in sorted(np.random.default_rng(cfg.seed + 3).choice(len(rows), cfg.select_real, replace=False))]
    real_audio = [read_audio(path) for path, _ in real]
    if cfg.fixed_statistics or fixed_statistics(model.config.to_dict()) is not None:  # a model trained with them keeps them
        clips = np.random.default_rng(cfg.seed + 4).choice(len(dataset.audio), 400, replace=False)
        mean, var = fix_statistics(model, (dataset.float_audio(i) for i in clips))
        print(f"fixed first-layer statistics: mean variance {var.mean():.3f} over {len(var)} channels")
    babble = [dataset.float_audio(i) for i in np.random.default_rng(cfg.seed).choice(len(dataset.audio), 300)]
    augmenter = Augmenter(AugmentConfig(p_band_limit=cfg.band_limit), babble, cfg.seed)
    offset = frame_offset(model.config)
    shape = StreamShape.of(PipelineSettings())
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {len(dataset.rows)} training clips, "
          f"{len(dataset.batches)} batches an epoch, {len(real)} real + {len(synthetic)} synthetic development clips, "
          f"{torch.get_num_threads()} threads", flush=True)
    log = (out / "log.jsonl").open("a")
    ema: dict[str, float] = {}

    def checkpoint() -> None:
        nonlocal best
        record = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  **select_score(model, corpus, synthetic, real, real_audio, cfg.streamed > 0),
                  **{k: round(v, 4) for k, v in ema.items()}}
        if record["score"] < best:
            best = record["score"]
            save_model(model, out / "best", record, asdict(cfg))
        if step == cfg.steps:
            save_model(model, out / "last", record, asdict(cfg))
        save_state(last, model, optimizer, step, best, cfg, embedding)
        log.write(json.dumps(record) + "\n")
        log.flush()
        tqdm.write(json.dumps(record))

    if step == 0:
        checkpoint()
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, desc="fine-tune", mininterval=10, dynamic_ncols=True)
    last_ckpt = time.monotonic()
    while step < cfg.steps:
        batch = dataset.batch_for_step(step)
        rng = np.random.default_rng([cfg.seed, step, 1])
        stream = shape if np.random.default_rng([cfg.seed, step, 2]).random() < cfg.streamed else None
        clips = [dataset.float_audio(i) for i in batch]
        if stream is not None and cfg.stream_lead > 0:
            clips = [with_lead(clip, cfg.stream_lead, rng) for clip in clips]
        audios = [augmenter(clip, rng) for clip in clips]
        loss, parts = batch_losses(model, teacher, audios, [dataset.labels[i] for i in batch], offset, cfg, stream, embedding)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*model.parameters(), *(embedding.parameters() if embedding else ())], 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        for key, value in parts.items():
            ema[key] = value if math.isnan(ema.get(key, math.nan)) else 0.98 * ema[key] + 0.02 * value
        bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()})
        bar.update()
        if time.monotonic() - last_ckpt > cfg.ckpt_minutes * 60 or step == cfg.steps:
            checkpoint()
            last_ckpt = time.monotonic()
    bar.close()


def source_repeat(text: str) -> tuple[str, int]:
    """``--repeat``'s SOURCE=N."""
    source, _, times = text.partition("=")
    if not source or not times.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected SOURCE=N with N a whole number, e.g. precise=1")
    return source, int(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, action="append", default=[],
                        help="a corpus folder (train.jsonl, eval.jsonl); repeat to add another's synthetic clips and the real sources "
                             "the earlier ones lack")
    parser.add_argument("--init", type=Path, required=True, help="the assembled student to start from")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="checkpoints, log.jsonl, best/ and (at the end) last/")
    parser.add_argument("--data", type=Path, default=SHARED_DATA_DIR, help="the shared recordings folder")
    parser.add_argument("--steps", type=int, default=FinetuneConfig.steps)
    parser.add_argument("--head-lr", type=float, default=FinetuneConfig.head_lr)
    parser.add_argument("--body-lr", type=float, default=FinetuneConfig.body_lr,
                        help="front end and blocks (lower when continuing a fine-tuned model)")
    parser.add_argument("--int8-aware", action="store_true",
                        help="train through the rounding of `--int8` (quantisation-aware), so int8 loses little")
    parser.add_argument("--fixed-statistics", action="store_true",
                        help="normalise the CNN's first layer with statistics pooled over training clips, as streams need")
    parser.add_argument("--streamed", type=float, default=FinetuneConfig.streamed,
                        help="share of steps that train on what `kwstream listen` computes, chunk by chunk (0-1)")
    parser.add_argument("--stream-lead", type=float, default=FinetuneConfig.stream_lead,
                        help="seconds: up to this much quiet before each streamed clip, so words meet the chunks at every phase")
    parser.add_argument("--band-limit", type=float, default=FinetuneConfig.band_limit,
                        help="share of clips band-limited to 8 kHz before noise, as telephone and cheap microphones are")
    parser.add_argument("--repeat", action="append", default=[], type=source_repeat, metavar="SOURCE=N",
                        help=f"a source's clips N times an epoch (default: real ones {FinetuneConfig.real_repeat}, "
                             "synthetic ones once), e.g. precise=1 or kokoro=2; repeatable")
    parser.add_argument("--distill-weight", type=float, default=FinetuneConfig.distill_weight)
    parser.add_argument("--embedding-weight", type=float, default=FinetuneConfig.embedding_weight,
                        help="openWakeWord's speech embedding as a second teacher, predicted from --embedding-block's output (0: off)")
    parser.add_argument("--embedding-block", type=int, default=FinetuneConfig.embedding_block)
    parser.add_argument("--ckpt-minutes", type=float, default=FinetuneConfig.ckpt_minutes)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--export-last", action="store_true",
                        help="write OUT/last/, a complete model, from OUT/last.pt and stop (runs write it at their end)")
    args = parser.parse_args()
    if not (args.init / "config.json").is_file():
        parser.error(f"--init {args.init}: no saved model there (config.json missing)")
    if args.export_last:
        print(f"wrote {export_last(args.init, args.out)}")
        return
    if not args.corpus:
        parser.error("the following arguments are required: --corpus")
    if args.stream_lead < 0 or args.stream_lead > 0 and args.streamed <= 0:
        parser.error("--stream-lead takes seconds, 0 or more, and leads streamed clips: give --streamed too")
    torch.set_num_threads(args.threads)
    cfg = FinetuneConfig(steps=args.steps, head_lr=args.head_lr, body_lr=args.body_lr, distill_weight=args.distill_weight,
                         ckpt_minutes=args.ckpt_minutes, int8_aware=args.int8_aware,
                         fixed_statistics=args.fixed_statistics, streamed=args.streamed, stream_lead=args.stream_lead,
                         band_limit=args.band_limit,
                         source_repeat=tuple(args.repeat), embedding_weight=args.embedding_weight,
                         embedding_block=args.embedding_block)
    train(args.corpus, args.init, args.out, args.data, cfg, args.resume)


if __name__ == "__main__":
    main()
