"""Where enrolled keywords live: one plain directory per keyword, no pickle.

``STORE/NAME/keyword.json`` holds what a person or a program needs to know (layer, threshold,
the checkpoint's fingerprint, how the threshold was calibrated, where the examples came from) and
``STORE/NAME/examples.npz`` the examples' features (``example_0``, ``example_1``, ... each
float32 (frames, hidden)) and the centre of the hidden states (``centre``, float32 (hidden,); absent in
keywords enrolled before centring, format ``kwstream-enrolled-1``), read with ``allow_pickle=False``. The default STORE is the platform's
user data directory (``platformdirs.user_data_dir("kwstream")/keywords``: on Linux
``~/.local/share/kwstream/keywords``). A keyword is written into a hidden temporary directory
and renamed into place, so a failed enrollment leaves nothing half-written.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from kwstream.model.encoder import Encoder
from kwstream.errors import KwstreamError
from kwstream.keywords.keyword_set import KeywordSettings, split_threshold, typed_scorer
from kwstream.keywords.enrolled.scorer import FUSED, HIDDEN, LETTERS, VOICE, EnrolledScorer, letter_count, matching_groups, rival_groups
from kwstream.keywords.enrolled.spelled import SpelledOr, Spelling

FORMAT = "kwstream-enrolled-1"
CENTRED_FORMAT = "kwstream-enrolled-2"
"""A letters + hidden keyword whose hidden states are centred (``EnrolledKeyword.centre``): a new format, so that
code that predates centring refuses it instead of scoring uncentred windows against it."""
CENTRED_HIDDEN_FORMAT = "kwstream-enrolled-3"
"""A hidden-state keyword whose hidden states are centred, scored at its own ``scale``: code from before it
(which would score it at the uncentred scale) refuses it."""
VOICE_FORMAT = "kwstream-enrolled-4"
"""A letters + hidden states + voice keyword (``enroll --voice``), with its two scales: code from before it refuses it."""
FORMATS = (FORMAT, CENTRED_FORMAT, CENTRED_HIDDEN_FORMAT, VOICE_FORMAT)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
SPELLING_PATTERN = re.compile(r"\S+( \S+)*")
"""What ``greedy_spelling`` writes: the model's letters, words one space apart."""
METADATA_FILE = "keyword.json"
FEATURES_FILE = "examples.npz"


class EnrollmentError(KwstreamError):
    """Bad examples, a bad keyword name, a missing or corrupt stored keyword, or another model's keyword."""


def default_store() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("kwstream")) / "keywords"


@dataclass(frozen=True)
class EnrolledKeyword:
    name: str
    layer: int
    """Encoder layer whose hidden states the examples are (0 enters the transformer)."""
    threshold: float
    fingerprint: str
    """``Encoder.fingerprint`` of the checkpoint the features came from."""
    model: str
    """The checkpoint's name or path when enrolled, for messages."""
    examples: list[np.ndarray] = field(repr=False)
    """(frames, hidden) float32 features of each example."""
    sources: list[str] = field(default_factory=list)
    """Where each example came from (file path or "microphone")."""
    calibration: dict = field(default_factory=dict)
    """How the threshold was chosen: method, leave-one-out scores, negative scores."""
    kind: str = HIDDEN
    """``HIDDEN``: the examples are ``layer``'s hidden states; ``LETTERS``: the CTC head's letter posteriors;
    ``FUSED``: both side by side; ``VOICE``: and the speech embedding beside them."""
    centre: np.ndarray | None = field(default=None, repr=False)
    """(hidden,) float32 mean hidden state subtracted from the examples' and the windows' hidden states
    (``kwstream.keywords.enrolled.scorer.matching_frames``); None: not centred."""
    scale: float | tuple[float, float] | None = None
    """``HIDDEN`` keywords with a centre: ``hidden_score``'s scale, the mean distance at which keyword-free speech
    matches them (``kwstream.enroll.enroll.SpeechMatches``); ``VOICE``: ``voice_score``'s two (likewise);
    None otherwise."""
    spelling: Spelling | None = None
    """``FUSED``: the spelling the takes agree on, also read as a typed keyword (``kwstream.keywords.enrolled.spelled``);
    None where they agree on none, where the model has no typed keywords' thresholds, where keyword-free speech reads
    it too often (``kwstream.enroll.enroll.spelling_at``), and in keywords enrolled before 2026-12-07 (versions from
    before ignore the field and score the match alone)."""


def stored_format(keyword: EnrolledKeyword) -> str:
    """The format that says how ``keyword`` is scored: uncentred, centred letters + hidden, centred hidden states, or
    voice (letters + hidden + voice, two scales)."""
    if keyword.centre is None:
        return FORMAT
    return {HIDDEN: CENTRED_HIDDEN_FORMAT, VOICE: VOICE_FORMAT}.get(keyword.kind, CENTRED_FORMAT)


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise EnrollmentError(f"keyword name {name!r} must be 1-64 letters, digits, _ or -, starting with a letter or digit")
    return name


class KeywordStore:
    """A directory of enrolled keywords."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_store()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / METADATA_FILE).is_file() and NAME_PATTERN.match(p.name))

    def __contains__(self, name: str) -> bool:
        return (self.root / name / METADATA_FILE).is_file()

    def check_free(self, name: str) -> None:
        """Refuse a name already enrolled (checked before any slow work, and again when saving)."""
        if (self.root / check_name(name)).exists():
            raise EnrollmentError(f"keyword {name!r} is already enrolled in {self.root}; "
                                  f"pass --replace or remove it with `kwstream keywords --remove {name}`")

    def save(self, keyword: EnrolledKeyword, replace: bool = False) -> Path:
        """Write ``keyword`` all at once; refuse to overwrite one unless ``replace``."""
        if not replace:
            self.check_free(keyword.name)
        target = self.root / check_name(keyword.name)
        metadata = {"format": stored_format(keyword),
                    **{k: v for k, v in asdict(keyword).items() if k not in ("examples", "centre")},
                    "hidden_size": int(keyword.examples[0].shape[1]),
                    "example_frames": [len(e) for e in keyword.examples]}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.root, prefix=f".{keyword.name}.") as tmp:
                staging = Path(tmp) / keyword.name
                staging.mkdir()
                centre = {} if keyword.centre is None else {"centre": np.asarray(keyword.centre, np.float32)}
                np.savez(staging / FEATURES_FILE, **{f"example_{i}": e.astype(np.float32) for i, e in enumerate(keyword.examples)}, **centre)
                (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
                if target.exists():
                    shutil.rmtree(target)
                staging.rename(target)
        except OSError as exc:
            raise EnrollmentError(f"cannot write keyword {keyword.name!r} to {self.root}: {exc.strerror or exc}") from None
        return target

    def load(self, name: str) -> EnrolledKeyword:
        folder = self.root / check_name(name)
        if name not in self:
            known = ", ".join(self.names()) or "none"
            raise EnrollmentError(f"no enrolled keyword {name!r} in {self.root} (enrolled: {known}); "
                                  f"enroll it with `kwstream enroll {name} --from a.wav b.wav c.wav`")
        try:
            metadata = json.loads((folder / METADATA_FILE).read_text())
            if metadata.get("format") not in FORMATS:
                raise ValueError(f"unknown format {metadata.get('format')!r}")
            with np.load(folder / FEATURES_FILE, allow_pickle=False) as npz:
                examples = [npz[f"example_{i}"].astype(np.float32) for i in range(len(metadata["example_frames"]))]
                centre = npz["centre"].astype(np.float32) if metadata["format"] != FORMAT else None
            if centre is not None and centre.ndim != 1:
                raise ValueError(f"its centre has shape {centre.shape}")
            scale = metadata.get("scale")
            keyword = EnrolledKeyword(metadata["name"], int(metadata["layer"]), float(metadata["threshold"]),
                                      metadata["fingerprint"], metadata["model"], examples,
                                      list(metadata.get("sources", [])), dict(metadata.get("calibration", {})),
                                      metadata.get("kind", HIDDEN), centre, tuple(scale) if isinstance(scale, list) else scale)
            if keyword.kind not in (HIDDEN, LETTERS, FUSED, VOICE):
                raise ValueError(f"unknown kind {keyword.kind!r}")
            keyword = replace(keyword, spelling=stored_spelling(metadata.get("spelling"), keyword.kind))
            if metadata["format"] != stored_format(keyword):
                raise ValueError(f"a {keyword.kind} keyword in format {metadata['format']!r}")
            values = [] if keyword.scale is None else list(keyword.scale) if isinstance(keyword.scale, tuple) else [keyword.scale]
            if len(values) != {CENTRED_HIDDEN_FORMAT: 1, VOICE_FORMAT: 2}.get(metadata["format"], 0) \
                    or isinstance(keyword.scale, tuple) != (metadata["format"] == VOICE_FORMAT) \
                    or not all(type(v) in (int, float) and math.isfinite(v) and v > 0 for v in values):
                raise ValueError(f"scale {keyword.scale!r} in format {metadata['format']!r}")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as exc:  # AttributeError: JSON no object
            raise EnrollmentError(f"enrolled keyword {name!r} in {folder} is unreadable ({exc}); enroll it again") from None
        if any(e.ndim != 2 or len(e) == 0 for e in examples):
            raise EnrollmentError(f"enrolled keyword {name!r} in {folder} has empty examples; enroll it again")
        return keyword

    def remove(self, name: str) -> None:
        if name not in self:
            raise EnrollmentError(f"no enrolled keyword {name!r} in {self.root}")
        shutil.rmtree(self.root / name)


def stored_spelling(value: object, kind: str) -> Spelling | None:
    """A keyword's ``spelling`` as ``keyword.json`` holds it (ValueError where it is not one a letters + hidden states
    keyword can have)."""
    if value is None:
        return None
    if kind != FUSED or not isinstance(value, dict) or not isinstance(value.get("text"), str) \
            or not SPELLING_PATTERN.fullmatch(value["text"]) or type(value.get("threshold")) not in (int, float) \
            or not 0 < value["threshold"] < 1:
        raise ValueError(f"spelling {value!r} of a {kind} keyword")
    return Spelling(value["text"], float(value["threshold"]))


def check_model(keyword: EnrolledKeyword, encoder: Encoder) -> None:
    """Refuse a keyword whose features came from another checkpoint than ``encoder``."""
    if keyword.fingerprint != encoder.fingerprint:
        raise EnrollmentError(
            f"keyword {keyword.name!r} was enrolled with model {keyword.model} (fingerprint {keyword.fingerprint}), "
            f"not with {encoder.name} ({encoder.fingerprint}): listen with that model or enroll it again with this one")
    if keyword.kind != LETTERS:
        encoder.check_layer(keyword.layer)


def parse_enrolled(spec: str) -> tuple[str, float | None]:
    """``NAME`` or ``NAME:THRESHOLD``."""
    name, threshold = split_threshold(spec)
    return check_name(name), threshold


RIVALS_FLOOR = 0.7
"""A voice keyword's floor, as a share of its takes' lowest leave-one-out score, where it listens beside rivals
(``closest_only``), in place of the 0.9 it is enrolled with. Alone, the floor is what keeps the speaker's other words
under the threshold; among rivals, those words fire the keyword they are most like or none. Ten digits of one speaker
enrolled with ``--voice`` and heard together in that speaker's stream (jackson, lucas, nicolas): 0.76 found at 0.24
false alarms an hour at 0.9, 0.93 at 1.65 at 0.7 (docs/enrollment.md, *Voice keywords among rivals*)."""


def listening_threshold(keyword: EnrolledKeyword, rivals: bool) -> float:
    """The threshold ``keyword`` listens at: the enrolled one, or for a voice keyword among ``rivals``, the negatives'
    over ``RIVALS_FLOOR``'s floor (never higher than the enrolled one; keywords enrolled before the negatives' own
    threshold was stored keep theirs)."""
    negatives, takes = keyword.calibration.get("from_negatives"), keyword.calibration.get("leave_one_out")
    if keyword.kind != VOICE or not rivals or not isinstance(negatives, (int, float)) or not takes:
        return keyword.threshold
    lowered = max(negatives, RIVALS_FLOOR * min(takes))
    return min(keyword.threshold, round(lowered, 4))


def load_scorer(specs: list[str], store: KeywordStore, encoder: Encoder,
                pause_ms: int = KeywordSettings.pause_ms) -> EnrolledScorer | SpelledOr:
    """The scorer for ``--enrolled NAME[:T]`` options, every keyword checked against ``encoder``,
    with the thresholds measured at enrollment (``listening_threshold``: lower for voice keywords among rivals; a ``:T`` given here goes to the spotter as the
    user's own, see ``kwstream.keywords.keyword_set.keyword_thresholds``). ``pause_ms``: the blank time
    that ends a word where a keyword's spelling is read, the listener's ``KeywordSettings.pause_ms`` as typed
    keywords get it."""
    keywords = []
    for spec in specs:
        name, _ = parse_enrolled(spec)
        keyword = store.load(name)
        check_model(keyword, encoder)
        keywords.append(keyword)
    rivals = rival_groups(matching_groups([k.kind for k in keywords], [k.layer for k in keywords], [k.centre for k in keywords]))
    thresholds = [listening_threshold(k, rivals.count(group) > 1) for k, group in zip(keywords, rivals)]
    enrolled = EnrolledScorer([k.name for k in keywords], [k.layer for k in keywords], [k.examples for k in keywords], thresholds,
                              [k.kind for k in keywords], encoder.blank_id if encoder.has_ctc_head else 0, letter_count(encoder),
                              [k.centre for k in keywords], [k.scale for k in keywords])
    spelled = [k.spelling.text for k in keywords if k.spelling is not None]
    if not spelled:
        return enrolled
    return SpelledOr(enrolled, typed_scorer(encoder, spelled, pause_ms), [k.spelling for k in keywords], thresholds)
