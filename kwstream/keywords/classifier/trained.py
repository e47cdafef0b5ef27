"""Keywords trained from their text (``kwstream train --keywords``): how they are stored and how
they confirm the typed keywords' CTC candidates.

Storage is plain data, as for enrolled keywords, in the same store (``STORE/NAME/``, so one name
means one thing): ``trained.json`` holds the head's settings (``HeadConfig``, with the encoder's
fingerprint) and the training report, ``weights.npz`` its weights as float32 arrays named like its
state_dict, read with ``allow_pickle=False``. Loading refuses a head trained on another checkpoint.

By default a trained head is a second stage: ``ConfirmedScorer`` runs the CTC scorer, and for each
keyword's best alignment in a window asks the head for that keyword's posterior on the clip
centred there (training clips were centred the same way); the match scores the CTC score times
that posterior, at the alignment's frames, against the CTC threshold. One score keeps both rankings,
so a threshold sweep trades recall for false alarms along both (a hard veto at the head's own
threshold threw the head's ranking away: docs/classifiers.md measures both).
CTC matches below ``CANDIDATE_FLOOR`` are no candidates and score 0.
The head can also spot alone (``ClassifierScorer``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from kwstream.keywords.base import KeywordMatch, KeywordScorer
from kwstream.keywords.classifier.head import ClassifierError, ClassifierHead, ClassifierScorer, HeadConfig, build_head
from kwstream.keywords.ctc import CtcKeywordScorer
from kwstream.keywords.enrolled.store import METADATA_FILE as ENROLLED_FILE
from kwstream.keywords.enrolled.store import NAME_PATTERN, check_name, default_store
from kwstream.keywords.keyword_set import KeywordSettings, typed_scorer
from kwstream.model.encoder import EncodedFrames, Encoder

FORMAT = "kwstream-trained-1"
METADATA_FILE = "trained.json"
WEIGHTS_FILE = "weights.npz"
CANDIDATE_FLOOR = 0.3
"""CTC scores below this are no candidates (they score 0 without asking the head): far below any
default threshold, and it spares the head most windows."""


def trained_folder(spec: str, store: str | Path | None = None) -> Path:
    """``NAME`` in the keyword store (``store`` or the default), or a folder path (it has a ``/``)."""
    if os.sep in spec or spec.startswith("."):
        return Path(spec).expanduser()
    return (Path(store).expanduser() if store is not None else default_store()) / check_name(spec)


def trained_names(store: str | Path | None = None) -> list[str]:
    root = Path(store).expanduser() if store is not None else default_store()
    return sorted(p.name for p in root.iterdir() if (p / METADATA_FILE).is_file()) if root.is_dir() else []


def check_free(folder: Path) -> None:
    """Refuse a folder or name that already exists (checked before training, and again when saving)."""
    if folder.exists():
        store = "" if folder.parent == default_store() else f" --store {folder.parent}"
        listed = any((folder / kind).is_file() for kind in (METADATA_FILE, ENROLLED_FILE))  # what `keywords` removes
        removal = f"`kwstream keywords{store} --remove {folder.name}`" if listed and NAME_PATTERN.match(folder.name) else "delete it"
        raise ClassifierError(f"{folder} already exists: pick another --name or --out, or remove it ({removal})")


def save_trained(head: ClassifierHead, folder: Path, report: dict) -> Path:
    """Write the head and its ``report`` (plain JSON data) into ``folder`` all at once; never overwrites."""
    check_free(folder)
    metadata = {"format": FORMAT, "config": asdict(head.config), "report": report}
    weights = {name: t.detach().float().cpu().numpy() for name, t in head.state_dict().items()}
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as tmp:
            staging = Path(tmp) / folder.name
            staging.mkdir()
            np.savez(staging / WEIGHTS_FILE, **weights)
            (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
            staging.rename(folder)
    except OSError as exc:
        raise ClassifierError(f"cannot write {folder}: {exc.strerror or exc}") from None
    return folder


def read_metadata(folder: Path) -> dict:
    """The ``trained.json`` of ``folder`` (config and report), checked for its format."""
    if not (folder / METADATA_FILE).is_file():
        raise ClassifierError(f"no trained keywords in {folder} (train them with `kwstream train --keywords ... --name NAME`)")
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
        if metadata.get("format") != FORMAT:
            raise ValueError(f"unknown format {metadata.get('format')!r}")
        HeadConfig(**metadata["config"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # AttributeError: JSON that is no object
        raise ClassifierError(f"{folder / METADATA_FILE} is unreadable ({exc}); train the keywords again") from None
    return metadata


def load_trained(folder: Path, encoder: Encoder) -> ClassifierHead:
    """The head stored in ``folder``, refused unless it was trained on ``encoder``'s checkpoint."""
    config = HeadConfig(**read_metadata(folder)["config"])
    try:
        with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as npz:
            state = {name: torch.from_numpy(npz[name]) for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ClassifierError(f"{folder / WEIGHTS_FILE} is unreadable ({exc}); train the keywords again") from None
    return build_head(config, state, encoder, str(folder))


class ConfirmedScorer:
    """Typed keywords whose CTC candidates a trained head confirms or rejects (a second stage)."""

    def __init__(self, ctc: CtcKeywordScorer, head: ClassifierHead) -> None:
        self.ctc = ctc
        self.head = head.eval()
        config = head.config
        unknown = [k for k in ctc.keywords if k not in config.keywords]
        if unknown:
            raise ClassifierError(f"the trained head knows {', '.join(config.keywords)}, not {', '.join(unknown)}")
        self.keywords = list(ctc.keywords)
        self.layers = (config.input_layer,)
        self.thresholds: dict[str, float | None] = dict(ctc.thresholds)
        """The CTC scores' thresholds (None: the model's calibrated default): a confirmed score is at
        most the CTC score, and on half the development streams no lower default did better."""
        self._classes = [config.classes.index(k) for k in self.keywords]

    def posteriors(self, features: np.ndarray, candidates: list[tuple[int, KeywordMatch]]) -> list[float]:
        """The head's posterior of each candidate's keyword, the best of the clips centred on its
        match and one stride either side; one batch for all of them."""
        clip, stride = self.head.config.clip_frames, self.head.config.stride_frames
        top = max(0, len(features) - clip)
        starts = [sorted({min(top, max(0, (m.start_frame + m.end_frame) // 2 - clip // 2 + shift)) for shift in (-stride, 0, stride)})
                  for _, m in candidates]
        with torch.inference_mode():
            x = self.head.run_blocks(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None])[0]
            batch = torch.stack([x[s:s + clip] for group in starts for s in group])
            probs = torch.softmax(self.head.pool(batch)[0], -1).numpy()
        found, row = [], 0
        for (k, _), group in zip(candidates, starts):
            found.append(float(probs[row:row + len(group), self._classes[k]].max()))
            row += len(group)
        return found

    def score_frames(self, frames: EncodedFrames) -> list[KeywordMatch]:
        matches = self.ctc.score_frames(frames)
        features = frames.features[self.head.config.input_layer]
        candidates = [(k, m) for k, m in enumerate(matches) if m.score >= CANDIDATE_FLOOR]
        posterior = dict(zip((k for k, _ in candidates), self.posteriors(features, candidates) if candidates and len(features) else []))
        return [KeywordMatch(m.score * posterior.get(k, 0.0), m.start_frame, m.end_frame) for k, m in enumerate(matches)]


def trained_scorer(head: ClassifierHead, encoder: Encoder, keywords: Sequence[str] = (), *, alone: bool = False,
                   pause_ms: int = KeywordSettings.pause_ms) -> KeywordScorer:
    """The library's way to use trained keywords: ``keywords`` (default: all the head's) typed and
    confirmed by ``head``, or (``alone``) the head spotting all its keywords by itself. Pass the
    result to ``Spotter(scorers=[...])`` or ``KeywordSet``."""
    if alone:
        return ClassifierScorer(head)
    return ConfirmedScorer(typed_scorer(encoder, list(keywords) or head.config.keywords, pause_ms), head)


def remove_trained(folder: Path) -> None:
    read_metadata(folder)
    shutil.rmtree(folder)
