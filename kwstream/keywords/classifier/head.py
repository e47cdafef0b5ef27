"""A trained keyword classifier on wav2vec2 hidden states, and the scorer that slides it over a window.

The head reads one hidden-state layer of a fixed checkpoint, so it only means something on that
checkpoint: the head file stores the encoder's fingerprint and loading refuses any other model.
When training unfroze the encoder's top blocks, the head carries its own copies of them and runs
them on the frames of the layer below, so the streaming encoder stays shared and untouched.

A clip is ``clip_frames`` frames (1 s, as in Speech Commands). The spotter's windows are longer
(1.5 s); the scorer slides a clip-long sub-window over them in one batch and reports, per keyword,
the best sub-window's class posterior, with the frames its attention pooling leaned on.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kwstream.model.encoder import EncodedFrames, Encoder
from kwstream.errors import KwstreamError
from kwstream.keywords.base import KeywordMatch

UNKNOWN_CLASS = "_unknown_"
"""Speech that is none of the keywords."""
SILENCE_CLASS = "_silence_"
"""Background noise without speech (Speech Commands' name for it)."""
HEAD_FORMAT = "kwstream-classifier-1"
DEFAULT_THRESHOLD = 0.5
"""Posterior at which a keyword is likelier than every other class together."""
ATTENTION_SPAN_MASS = 0.9
"""Share of the attention weight whose frames are reported as where the keyword lies."""


class ClassifierError(KwstreamError):
    """A head file that is missing, corrupt, or made for another checkpoint."""


@dataclass(frozen=True)
class HeadConfig:
    """Everything needed to rebuild a head, stored in its file next to the weights."""

    classes: list[str]
    """Keyword names first, then ``_unknown_`` and ``_silence_``."""
    layer: int
    """Encoder layer the pooling head reads (after the head's own unfrozen blocks, if any)."""
    hidden_size: int
    fingerprint: str
    """The encoder checkpoint the head was trained on (``Encoder.fingerprint``)."""
    model_name: str
    unfrozen_blocks: int = 0
    """Top encoder blocks trained with the head; the head reads layer ``layer - unfrozen_blocks`` from the encoder."""
    clip_frames: int = 50
    """Frames of one classified clip (50 x 20 ms = 1 s)."""
    stride_frames: int = 5
    """Step of the sliding sub-window inside a scoring window."""
    width: int = 128
    """Channels of the pooling head."""
    dropout: float = 0.1
    thresholds: dict[str, float] = field(default_factory=dict)
    """Per keyword threshold the detector uses unless the user sets one."""
    trained_on: str = ""
    """One line about the data, for people reading the file."""

    @property
    def keywords(self) -> list[str]:
        return [c for c in self.classes if c not in (UNKNOWN_CLASS, SILENCE_CLASS)]

    @property
    def input_layer(self) -> int:
        """Layer the head needs from the encoder."""
        return self.layer - self.unfrozen_blocks


class ClassifierHead(nn.Module):
    """Optional top encoder blocks, then per-frame projection, a local convolution, attention
    pooling over frames and a linear layer to class logits."""

    def __init__(self, config: HeadConfig, blocks: nn.ModuleList | None = None) -> None:
        super().__init__()
        self.config = config
        self.blocks = blocks if blocks is not None else nn.ModuleList()
        if len(self.blocks) != config.unfrozen_blocks:
            raise ValueError(f"head expects {config.unfrozen_blocks} blocks, got {len(self.blocks)}")
        self.norm = nn.LayerNorm(config.hidden_size)
        self.project = nn.Linear(config.hidden_size, config.width)
        self.conv = nn.Conv1d(config.width, config.width, kernel_size=5, padding=2)
        self.attention = nn.Linear(config.width, 1)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(2 * config.width, len(config.classes))

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, frames, hidden) of the input layer -> the same of ``config.layer``."""
        for block in self.blocks:
            x = block(x)
            x = x[0] if isinstance(x, tuple) else x
        return x

    def pool(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, frames, hidden) of ``config.layer`` -> logits (batch, classes) and attention (batch, frames)."""
        h = self.dropout(nn.functional.gelu(self.project(self.norm(x))))
        h = h + nn.functional.gelu(self.conv(h.transpose(1, 2))).transpose(1, 2)
        weights = torch.softmax(self.attention(h).squeeze(-1), dim=-1)
        pooled = torch.cat([(weights[..., None] * h).sum(1), h.amax(1)], dim=-1)
        return self.out(self.dropout(pooled)), weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of clips of input-layer features, (batch, frames, hidden) -> (batch, classes)."""
        return self.pool(self.run_blocks(x))[0]


def top_blocks(encoder: Encoder, count: int) -> nn.ModuleList:
    """Trainable float32 copies of the encoder's top ``count`` transformer blocks."""
    if count < 0 or count > encoder.layers:
        raise ClassifierError(f"cannot unfreeze {count} blocks: model {encoder.name!r} has {encoder.layers}")
    blocks = encoder.transformer_blocks
    return nn.ModuleList(copy.deepcopy(blocks[len(blocks) - count:])).float().cpu() if count else nn.ModuleList()


def save_head(head: ClassifierHead, path: Path) -> None:
    """Write the head (config as plain data, weights as a state_dict) in one atomic step."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    torch.save({"format": HEAD_FORMAT, "config": asdict(head.config), "state_dict": head.state_dict()}, tmp)
    tmp.replace(path)


def load_head(path: str | Path, encoder: Encoder) -> ClassifierHead:
    """The head in ``path``, checked against ``encoder``; blocks are rebuilt from the encoder's own
    (for their architecture) and then take the trained weights from the file."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"no such classifier file: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != HEAD_FORMAT:
            raise ValueError
        config = HeadConfig(**saved["config"])
    except Exception:  # torch raises many types for a file that is not ours
        raise ClassifierError(f"{path} is not a kwstream classifier head (train one with `kwstream train`)") from None
    return build_head(config, saved["state_dict"], encoder, str(path))


def build_head(config: HeadConfig, state_dict: dict[str, torch.Tensor], encoder: Encoder, source: str) -> ClassifierHead:
    """A stored head (``source`` names it in messages), refused unless it was trained on ``encoder``'s checkpoint."""
    if config.fingerprint != encoder.fingerprint:
        raise ClassifierError(
            f"{source} was trained on features of model {config.model_name!r} (fingerprint {config.fingerprint}), "
            f"not on {encoder.name!r} ({encoder.fingerprint}): pass that model with --model, or retrain the head on this one"
        )
    encoder.check_layer(config.input_layer)
    head = ClassifierHead(config, top_blocks(encoder, config.unfrozen_blocks))
    try:
        head.load_state_dict(state_dict)
    except RuntimeError:
        raise ClassifierError(f"{source} has weights that do not fit its own settings: it is damaged") from None
    return head.eval()


class ClassifierScorer:
    """A trained head as a keyword scorer: each keyword's score is its class posterior in the best
    clip-long sub-window of the scoring window."""

    def __init__(self, head: ClassifierHead) -> None:
        self.head = head.eval()
        self.config = head.config
        self.keywords = self.config.keywords
        self.layers = (self.config.input_layer,)
        self.thresholds: dict[str, float | None] = {k: self.config.thresholds.get(k, DEFAULT_THRESHOLD) for k in self.keywords}

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder) -> ClassifierScorer:
        return cls(load_head(path, encoder))

    def posteriors(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class posteriors of every sub-window of ``features`` (frames, hidden): (windows, classes),
        the sub-windows' first frames, and their attention (windows, clip frames)."""
        clip, stride = self.config.clip_frames, self.config.stride_frames
        with torch.inference_mode():
            x = self.head.run_blocks(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None])[0]
            frames = len(x)
            if frames <= clip:
                starts = np.array([0])
                batch = x[None]
            else:
                starts = np.unique(np.append(np.arange(0, frames - clip + 1, stride), frames - clip))
                batch = x.unfold(0, clip, 1)[torch.from_numpy(starts)].transpose(1, 2)
            logits, attention = self.head.pool(batch)
            return torch.softmax(logits, -1).numpy(), starts, attention.numpy()

    def score_frames(self, frames: EncodedFrames) -> list[KeywordMatch]:
        features = frames.features[self.config.input_layer]
        if len(features) == 0:
            return [KeywordMatch(0.0, 0, 0) for _ in self.keywords]
        probs, starts, attention = self.posteriors(features)
        matches = []
        for k in range(len(self.keywords)):
            best = int(np.argmax(probs[:, k]))
            first, last = attention_span(attention[best])
            matches.append(KeywordMatch(float(probs[best, k]), int(starts[best]) + first, int(starts[best]) + last))
        return matches


def attention_span(weights: np.ndarray, mass: float = ATTENTION_SPAN_MASS) -> tuple[int, int]:
    """The frames [first, last) between the tails of ``weights`` that hold ``mass`` of it together."""
    tail = (1.0 - mass) / 2
    cumulative = np.cumsum(weights) / max(float(weights.sum()), 1e-12)
    first = int(np.searchsorted(cumulative, tail))
    last = int(np.searchsorted(cumulative, 1.0 - tail)) + 1
    return first, max(first + 1, min(last, len(weights)))
