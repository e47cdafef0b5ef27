"""The student's side of distillation: a small head that predicts the teacher's features from one hidden layer.

DistilHuBERT's loss (Chang et al., 2022): L1 distance plus -log sigmoid(cosine similarity), per teacher
step. Targets are standardised per dimension (over the corpus) so that no dimension dominates. The head
is trained with the model and saved in the training checkpoint, never in the shipped model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kwstream.model.speech_embedding import DIMENSIONS
from training.teacher import student_frames


class PredictionHead(nn.Module):
    def __init__(self, hidden_size: int, teacher_dim: int = DIMENSIONS) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, teacher_dim))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden)


def distillation_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over steps of L1 (per dimension) - log sigmoid(cosine)."""
    l1 = (prediction - target).abs().mean(dim=-1)
    cosine = nn.functional.cosine_similarity(prediction, target, dim=-1)
    return (l1 - nn.functional.logsigmoid(cosine)).mean()


def batch_targets(teacher: list[np.ndarray], speeds: list[float], student_lengths: list[int],
                  mean: np.ndarray, std: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clip index, student frame, standardised target) for every teacher step that lands inside its clip."""
    rows, frames, targets = [], [], []
    for b, (steps, speed, length) in enumerate(zip(teacher, speeds, student_lengths, strict=True)):
        at = student_frames(len(steps), speed)
        keep = at < length
        rows.append(np.full(int(keep.sum()), b))
        frames.append(at[keep])
        targets.append((steps[keep].astype(np.float32) - mean) / std)
    return (torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(frames)),
            torch.from_numpy(np.concatenate(targets)))
