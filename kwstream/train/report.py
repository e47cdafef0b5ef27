"""How good a trained head is: clip accuracy and confusion on validation speakers, and false alarms
per hour on held-out background noise, fired through the spotter's own Detector."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwstream.stream.replay import replay
from kwstream.stream.detector import DetectorSettings, WindowScore
from kwstream.stream.events import ScoredWindow


@dataclass(frozen=True)
class ClassifierReport:
    classes: list[str]
    accuracy: float
    """Share of validation clips whose most likely class is right (nan without validation clips)."""
    confusion: list[list[int]]
    """Counts, rows the true class, columns the predicted one, in the order of ``classes``."""
    background_hours: float
    background_false_alarms: int
    """Keyword detections on held-out background noise, every window scored (no VAD), at the head's thresholds."""
    best_epoch: int
    train_clips: int
    val_clips: int

    @property
    def false_alarms_per_hour(self) -> float:
        return self.background_false_alarms / self.background_hours if self.background_hours else float("nan")

    def recall(self, name: str) -> float:
        i = self.classes.index(name)
        row = self.confusion[i]
        return row[i] / sum(row) if sum(row) else float("nan")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def background_false_alarms(keyword_probs: np.ndarray, files: Sequence[str], keywords: Sequence[str],
                            thresholds: dict[str, float], hop_s: float, clip_s: float) -> int:
    """Detections the live Detector would fire on consecutive clips (``hop_s`` apart, each aligned
    to its whole ``clip_s``) of background, replayed as the windows of one stream per file
    (``kwstream.stream.replay``); ``files`` names each clip's file."""
    streams: dict[str, list[ScoredWindow]] = {}
    for i, (probs, file) in enumerate(zip(keyword_probs, files)):
        t = i * hop_s
        streams.setdefault(file, []).append(ScoredWindow(
            t, t + clip_s, {k: WindowScore(k, float(p), t, t + clip_s) for k, p in zip(keywords, probs)}, 0.0))
    return sum(len(replay(windows, k, thresholds[k], DetectorSettings())) for windows in streams.values() for k in keywords)


def format_report(report: ClassifierReport) -> str:
    """The report as text: accuracy, per-class recall and the confusion matrix."""
    names = report.classes
    width = max(6, *(len(n) for n in names)) + 1
    lines = [
        f"clips: {report.train_clips} training examples, {report.val_clips} validation clips; best epoch {report.best_epoch}",
        f"validation accuracy {report.accuracy:.3f}",
        f"false alarms on held-out background: {report.background_false_alarms} in {report.background_hours * 60:.1f} min "
        f"({report.false_alarms_per_hour:.1f} per hour, every 0.25 s window scored, no VAD)",
        "confusion (rows: true class, columns: predicted; last column: recall)",
        " " * width + "".join(f"{n[:width - 1]:>{width}}" for n in names) + f"{'recall':>{width}}",
    ]
    for name, row in zip(names, report.confusion):
        recall = report.recall(name)
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row)
                     + (f"{recall:>{width}.2f}" if sum(row) else f"{'-':>{width}}"))
    return "\n".join(lines)


def plot_confusion(report: ClassifierReport, path: str | Path, title: str) -> None:
    """Row-normalised confusion matrix with counts, as a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(report.confusion, dtype=np.float64)
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    n = len(report.classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), report.classes, rotation=45, ha="right")
    ax.set_yticks(range(n), report.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {report.accuracy:.3f}, {report.val_clips} validation clips", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.partial.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
