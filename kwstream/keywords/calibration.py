"""Per-model default thresholds by keyword length, measured by `kwstream eval --calibrate`.

Short keywords have fewer tokens to average over, so their scores are noisier and need a higher
threshold for the same false-alarm rate. A model directory may hold ``kwstream.json`` with the
thresholds `eval` measured for it, by number of letters; keywords of other lengths take the
nearest measured length. Without one, every keyword starts at FALLBACK_THRESHOLD.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

CALIBRATION_FILE = "kwstream.json"
FALLBACK_THRESHOLD = 0.5
UNREACHABLE_THRESHOLD = 0.99
"""Used for a length where no threshold on the grid reached the target false-alarm rate."""


def letters(keyword: str) -> int:
    return sum(ch.isalpha() or ch == "'" for ch in keyword)


@dataclass(frozen=True)
class Calibration:
    thresholds_by_letters: dict[int, float]
    target_false_alarms_per_hour: float
    measured_on: str
    """What the thresholds were measured on (the eval data), for the record."""

    def threshold_for(self, keyword: str) -> float:
        n = letters(keyword)
        nearest = min(self.thresholds_by_letters, key=lambda length: (abs(length - n), -length))
        return self.thresholds_by_letters[nearest]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


def load_calibration(model_dir: str | Path) -> Calibration | None:
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return Calibration({int(k): float(v) for k, v in data["thresholds_by_letters"].items()},
                       float(data["target_false_alarms_per_hour"]), str(data.get("measured_on", "")))


def fit_calibration(keyword_thresholds: dict[str, float | None], target: float, measured_on: str) -> Calibration:
    """Median, per keyword length, of the thresholds that met ``target`` false alarms per hour."""
    by_length: dict[int, list[float]] = {}
    for keyword, threshold in keyword_thresholds.items():
        by_length.setdefault(letters(keyword), []).append(UNREACHABLE_THRESHOLD if threshold is None else threshold)
    return Calibration({n: round(statistics.median(t), 2) for n, t in sorted(by_length.items())}, target, measured_on)


def resolve_thresholds(
    own: dict[str, float | None],
    everyone: float | None,
    calibration: Calibration | None,
    measured: dict[str, float | None] | None = None,
) -> dict[str, float]:
    """Each keyword's threshold: its own, else the one for every keyword, else one measured for
    that keyword (enrollment, training), else the model's calibrated one for its length, else
    FALLBACK_THRESHOLD."""
    measured = measured or {}

    def pick(keyword: str, threshold: float | None) -> float:
        for candidate in (threshold, everyone, measured.get(keyword)):
            if candidate is not None:
                return candidate
        return calibration.threshold_for(keyword) if calibration else FALLBACK_THRESHOLD

    return {keyword: pick(keyword, threshold) for keyword, threshold in own.items()}
