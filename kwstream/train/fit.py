"""The training loop of a classifier head on cached features: class-balanced cross-entropy, AdamW,
and the epoch with the best validation accuracy kept."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from kwstream.keywords.classifier.head import ClassifierHead


@dataclass(frozen=True)
class FitSettings:
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    """Of the pooling head."""
    block_learning_rate: float = 1e-4
    """Of unfrozen encoder blocks: smaller, so training adapts them instead of overwriting them."""
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    """Counted from 1."""
    train_loss: list[float]
    val_accuracy: list[float]
    """Per epoch; empty without validation clips."""


def predict(head: ClassifierHead, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class posteriors (clips, classes) of clips of input-layer features (clips, frames, hidden)."""
    head.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(features), batch_size):
            batch = torch.from_numpy(features[i:i + batch_size]).float()
            out.append(torch.softmax(head(batch), -1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(head.config.classes)), np.float32)


def fit(head: ClassifierHead, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
        settings: FitSettings) -> FitResult:
    """Train ``head`` in place on (clips, frames, hidden) features and class indices; ends holding the best epoch's weights."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    classes = len(head.config.classes)
    counts = np.bincount(y_train, minlength=classes).astype(np.float64)
    weights = torch.tensor(counts.sum() / (classes * np.maximum(counts, 1)), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=settings.label_smoothing)
    block_params = list(head.blocks.parameters())
    head_params = [p for name, p in head.named_parameters() if not name.startswith("blocks.")]
    groups = [{"params": head_params, "lr": settings.learning_rate}]
    if block_params:
        groups.append({"params": block_params, "lr": settings.block_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
    steps = settings.epochs * -(-len(x_train) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups], total_steps=max(steps, 1))
    labels = torch.from_numpy(y_train.astype(np.int64))
    best_state, best_key, best_epoch = None, None, settings.epochs
    losses: list[float] = []
    accuracies: list[float] = []
    bar = tqdm(range(1, settings.epochs + 1), desc="training", unit="epoch")
    for epoch in bar:
        head.train()
        order = rng.permutation(len(x_train))
        total = 0.0
        for i in range(0, len(order), settings.batch_size):
            batch = order[i:i + settings.batch_size]
            loss = loss_fn(head(torch.from_numpy(x_train[batch]).float()), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        losses.append(total / max(len(x_train), 1))
        postfix = {"loss": f"{losses[-1]:.3f}"}
        if len(x_val):
            probs = predict(head, x_val)
            accuracies.append(float(np.mean(probs.argmax(1) == y_val)))
            val_loss = float(-np.mean(np.log(probs[np.arange(len(y_val)), y_val] + 1e-9)))
            key = (accuracies[-1], -val_loss)
            if best_key is None or key > best_key:
                best_key, best_epoch, best_state = key, epoch, copy.deepcopy(head.state_dict())
            postfix["val acc"] = f"{accuracies[-1]:.3f}"
        bar.set_postfix(postfix)
    if best_state is not None:
        head.load_state_dict(best_state)
    return FitResult(best_epoch, losses, accuracies)
