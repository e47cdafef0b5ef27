"""DET curves of an evaluation, as an image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kwstream.evaluation.metrics import TARGET_FALSE_ALARMS_PER_HOUR, KeywordReport


def plot_det(reports: Sequence[KeywordReport], path: str | Path,
             target_false_alarms_per_hour: float = TARGET_FALSE_ALARMS_PER_HOUR) -> None:
    """DET curves, miss rate against false alarms per hour, one line per keyword."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # distinct colours for up to 20 keywords
    for r in reports:
        ax.plot(r.det_false_alarms_per_hour, r.det_miss_rate, marker=".", markersize=3, label=r.keyword)
        if r.labels:
            ax.plot([r.false_alarms_per_hour], [1 - r.recall], "k+", markersize=9)
    ax.axvline(target_false_alarms_per_hour, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("false alarms per hour")
    ax.set_ylabel("miss rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_title("DET curve (+ = chosen threshold)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2 if len(reports) > 7 else 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
