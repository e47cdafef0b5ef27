"""The keywords one pipeline spots, and the one map of thresholds they fire at.

``KeywordSet`` owns every job about keywords that is not scoring: parsing ``name:threshold``
specs, the homophone warnings (returned as data; the CLI prints them), building the CTC scorer
for typed keywords, checking the layers the scorers need against the encoder, and resolving each
keyword's threshold once. The Detector and the dashboard read its ``thresholds``, the one map.

A threshold comes from the first of: the keyword's own (``hey:0.8``, ``--enrolled NAME:T`` or an
override), the one for every keyword (``--threshold``), the one measured for it by enrollment or
training, and the model's calibration by keyword length. Short keywords have fewer tokens to
average over, so their scores are noisier and need a higher threshold for the same false-alarm
rate: a model directory may hold ``kwstream.json`` with the thresholds `eval --calibrate` measured
for it, by number of letters; keywords of other lengths take the nearest measured length.
Without one, every keyword starts at FALLBACK_THRESHOLD.
"""

from __future__ import annotations

import json
import numbers
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kwstream.audio.io import SAMPLE_RATE
from kwstream.errors import KeywordError
from kwstream.keywords.base import KeywordMatch, KeywordScorer
from kwstream.keywords.ctc import CtcKeywordScorer, normalize_keyword
from kwstream.keywords.homophones import homophone_warning
from kwstream.model.encoder import EncodedFrames, Encoder

CALIBRATION_FILE = "kwstream.json"
FALLBACK_THRESHOLD = 0.5
UNREACHABLE_THRESHOLD = 0.99
"""Used for a length where no threshold on the grid reached the target false-alarm rate."""


def letters(keyword: str) -> int:
    return sum(ch.isalpha() or ch == "'" for ch in keyword)


@dataclass(frozen=True)
class Calibration:
    """A model's default thresholds: a calibrated keyword's own, else the median of its length's.

    One threshold per length makes keywords pay for their neighbours (version 10's 4-letter 0.39 let
    "stop" fire 44 times an hour on the natural streams, where its own 0.63 keeps it to 5); the length
    serves keywords that were not measured."""

    thresholds_by_letters: dict[int, float]
    target_false_alarms_per_hour: float
    measured_on: str
    """What the thresholds were measured on (the eval data), for the record."""
    thresholds_by_keyword: dict[str, float] = field(default_factory=dict)

    def threshold_for(self, keyword: str) -> float:
        own = self.thresholds_by_keyword.get(keyword_key(keyword))
        if own is not None:
            return own
        n = letters(keyword)
        nearest = min(self.thresholds_by_letters, key=lambda length: (abs(length - n), -length))
        return self.thresholds_by_letters[nearest]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


def load_calibration(model_dir: str | Path) -> Calibration | None:
    """The calibration stored with a local model (None for a hub model or a directory without one)."""
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return Calibration({int(k): float(v) for k, v in data["thresholds_by_letters"].items()},
                       float(data["target_false_alarms_per_hour"]), str(data.get("measured_on", "")),
                       {str(k): float(v) for k, v in data.get("thresholds_by_keyword", {}).items()})


def fit_calibration(keyword_thresholds: dict[str, float | None], target: float, measured_on: str) -> Calibration:
    """Each keyword's threshold that met ``target`` false alarms per hour (``UNREACHABLE_THRESHOLD``
    where none did), and their median per keyword length for the keywords not measured."""
    own = {keyword_key(k): UNREACHABLE_THRESHOLD if t is None else round(t, 2) for k, t in keyword_thresholds.items()}
    by_length: dict[int, list[float]] = {}
    for keyword, threshold in own.items():
        by_length.setdefault(letters(keyword), []).append(threshold)
    return Calibration({n: round(statistics.median(t), 2) for n, t in sorted(by_length.items())}, target, measured_on,
                       dict(sorted(own.items())))


def keyword_key(keyword: str) -> str:
    """Keywords compare case- and space-insensitively ("Hey  Computer" is "hey computer"): calibrations, threshold
    names, labels."""
    return normalize_keyword(keyword).lower()


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


def split_threshold(spec: str) -> tuple[str, float | None]:
    """``"name"`` or ``"name:0.8"`` from the command line: the name, and the threshold in [0, 1] if given."""
    name, sep, threshold = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not sep:
        return name, None
    if ":" in name:
        raise KeywordError(f"{spec!r}: give a keyword one threshold, as name:0.8")
    try:
        value = float(threshold)
    except ValueError:
        raise KeywordError(f"threshold of {name!r} must be a number in [0, 1], got {threshold!r}") from None
    check_threshold(name, value)
    return name, value


def check_threshold(keyword: str, threshold: float) -> None:
    """The one check of a threshold given by name, on the command line or in the library."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):  # numpy floats are Real too
        raise KeywordError(f"threshold of {keyword!r} must be a number in [0, 1], got {threshold!r}")
    if not 0.0 <= threshold <= 1.0:  # NaN too: it compares False
        raise KeywordError(f"threshold of {keyword!r} must be in [0, 1], got {threshold}")


@dataclass(frozen=True)
class Keyword:
    """A typed keyword, optionally with its own threshold."""

    text: str
    threshold: float | None = None

    @classmethod
    def parse(cls, spec: str) -> Keyword:
        """``"hey"`` or ``"hey:0.8"`` (text, then an optional threshold in [0, 1])."""
        text, threshold = split_threshold(spec)
        text = normalize_keyword(text)
        if not text:
            raise KeywordError(f"empty keyword in {spec!r}")
        return cls(text, threshold)


def parse_keywords(spec: str) -> list[Keyword]:
    """``"hey:0.8,stop,hey computer"`` (the ``--keywords`` option) as Keywords."""
    return [Keyword.parse(part) for part in spec.split(",") if part.strip()]


def keyword_thresholds(
    typed: Sequence[Keyword],
    scorers: Sequence[KeywordScorer],
    overrides: Mapping[str, float] | None,
    everyone: float | None,
    calibration: Calibration | None,
) -> dict[str, float]:
    """Every keyword's threshold: typed ``hey:0.8`` or an override, else ``everyone``, else what
    its scorer measured for it, else the model's calibration by length (see resolve_thresholds)."""
    own = {k.text: k.threshold for k in typed} | {k: None for scorer in scorers for k in scorer.keywords}
    named = {keyword_key(k): k for k in own}  # "Hey  Computer" names "hey computer", as keywords compare
    unknown = sorted(k for k in overrides or {} if keyword_key(k) not in named)
    if unknown:  # a misspelt name would otherwise leave its keyword at the default, silently
        raise KeywordError(f"thresholds given for {', '.join(map(repr, unknown))}, which is not among the keywords "
                           f"({', '.join(own)})")
    for keyword, threshold in (overrides or {}).items():
        check_threshold(keyword, threshold)
    own |= {k if k in own else named[keyword_key(k)]: t for k, t in (overrides or {}).items()}
    measured = {k: t for scorer in scorers for k, t in scorer.thresholds.items()}
    return resolve_thresholds(own, everyone, calibration, measured)


def model_calibration(encoder: Encoder) -> Calibration | None:
    """The calibrated thresholds stored with the encoder's model, if it is a local directory that has them."""
    return load_calibration(encoder.name) if Path(encoder.name).is_dir() else None


@dataclass(frozen=True)
class KeywordSettings:
    """What every keyword of a set shares: where it fires and how typed keywords are aligned."""

    threshold: float | None = None
    """Score in [0, 1] at which every keyword fires unless it sets its own (``--threshold``); None
    takes the one measured for the keyword, else the model's calibration for its length."""
    pause_ms: int = 160
    """Blank time that counts as a word boundary when the model emits no delimiter (a CTC model
    leaves blanks inside words too; on the development streams 160 ms beat 100 ms and 60 ms, and
    matched 240 ms: mean recall at 1 false alarm per hour 0.39, against 0.35, 0.31 and 0.38)."""

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


def typed_scorer(encoder: Encoder, texts: Sequence[str], pause_ms: int = KeywordSettings.pause_ms) -> CtcKeywordScorer:
    """The CTC scorer of typed keywords on ``encoder``'s head; ``pause_ms`` of blank counts as a word boundary."""
    encoder.require_ctc_head()
    frame_s = encoder.samples_per_frame / SAMPLE_RATE
    return CtcKeywordScorer(list(texts), encoder.tokens, encoder.blank_id, encoder.delimiter_id,
                            pause_frames=max(1, round(pause_ms / 1000 / frame_s)))


class KeywordSet:
    """Typed keywords and other scorers on one encoder, with their names, layers and thresholds.

    ```python
    keywords = KeywordSet(encoder, ["hey", "stop:0.7"])
    keywords.names        # ['hey', 'stop']
    keywords.thresholds   # {'hey': 0.62, 'stop': 0.7}: the model's calibration for 'hey'
    ```
    """

    def __init__(
        self,
        encoder: Encoder,
        keywords: Sequence[str | Keyword] = (),
        scorers: Sequence[KeywordScorer] = (),
        *,
        thresholds: Mapping[str, float] | None = None,
        settings: KeywordSettings = KeywordSettings(),
    ) -> None:
        """
        Args:
            encoder: the model every scorer reads (checked: a CTC head for typed keywords, the layers).
            keywords: typed keywords such as ``"hey"``, ``"hey computer"``, ``"stop:0.7"``, or Keyword objects.
            scorers: other keyword scorers (enrolled examples, a trained classifier) on the same encoder.
            thresholds: per-keyword thresholds that override every default, for any scorer's keywords.
            settings: the threshold of every keyword that sets none of its own, and the pause between words.
        """
        self.typed = [k if isinstance(k, Keyword) else Keyword.parse(k) for k in keywords]
        if not self.typed and not scorers:
            raise KeywordError("no keywords given")
        self.scorers: list[KeywordScorer] = []
        if self.typed:
            self.scorers.append(typed_scorer(encoder, [k.text for k in self.typed], settings.pause_ms))
        self.scorers += scorers
        self.names: list[str] = [k for scorer in self.scorers for k in scorer.keywords]
        """Every keyword, scorer by scorer."""
        if len({k.lower() for k in self.names}) != len(self.names):
            raise KeywordError(f"duplicate keywords in {self.names}")
        self.needs_voice: bool = any(getattr(scorer, "needs_voice", False) for scorer in self.scorers)  # optional (KeywordScorer)
        """Whether a scorer matches voices: the windows' frames must carry the speech embedding (``EncodedFrames.voice``)."""
        self.layers: tuple[int, ...] = tuple(sorted({layer for scorer in self.scorers for layer in scorer.layers}))
        """Hidden-state layers the scorers need from the encoder besides the log-probabilities."""
        for layer in self.layers:
            encoder.check_layer(layer)
        self.homophone_warnings: list[str] = [w for k in self.typed if (w := homophone_warning(k.text))]
        """One line per typed keyword that sounds like a common word (for the caller to show)."""
        self.calibration = model_calibration(encoder)
        self.thresholds: dict[str, float] = keyword_thresholds(self.typed, scorers, thresholds, settings.threshold, self.calibration)
        """The one threshold map: the detector and the dashboard read it, ``set_threshold`` changes it."""

    def score_frames(self, frames: EncodedFrames) -> dict[str, KeywordMatch]:
        """Every keyword's best match in one window of frames, by name (one encoder pass serves
        every scorer; a scorer that gives too few or too many matches raises)."""
        return {k: m for scorer in self.scorers for k, m in zip(scorer.keywords, scorer.score_frames(frames), strict=True)}

    def set_threshold(self, keyword: str, threshold: float) -> None:
        """Change one keyword's threshold (takes effect at the next window); names compare as keywords do ("HEY" is
        "hey")."""
        named = {keyword_key(k): k for k in self.thresholds}
        if keyword_key(keyword) not in named:
            raise KeywordError(f"unknown keyword {keyword!r}")
        check_threshold(keyword, threshold)
        self.thresholds[named[keyword_key(keyword)]] = threshold
