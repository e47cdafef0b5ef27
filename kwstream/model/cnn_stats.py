"""The statistics the CNN's first GroupNorm normalises with, computed in numpy outside the graph.

In group-norm checkpoints the first convolution's output is normalised per channel over the whole
input; ``stages.CnnStage`` takes those statistics as inputs, so that a stretch of a chunk gives
that stretch of the whole chunk's CNN output. Torch-free, so that the ONNX path needs only the
first convolution's weights (stored beside its export) to feed its graph.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FirstLayerStats:
    """How to compute the CNN stage's ``mean`` and ``var`` inputs for a chunk of audio."""

    channels: int
    """The first convolution's output channels."""
    stride: int
    weight: np.ndarray | None = None
    """The first convolution's (channels, kernel) weights; None when no layer normalises over time."""
    bias: np.ndarray | None = None
    fixed: tuple[np.ndarray, np.ndarray] | None = None
    """Statistics to use for every input instead of its own (``Checkpoint.first_layer_statistics``)."""

    def of(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and (biased) variance over time of the first convolution's output on
        ``audio``; the fixed ones where the checkpoint gives them; zeros and ones (unused by the
        graph) without a GroupNorm.

        Whichever costs less: the patches' first and second moments (a kernel x kernel product:
        cheap for a narrow kernel at a high rate, such as 10 taps every 5 samples; in float64, as
        the variance is a difference of two large terms) or the first layer itself as one product
        over the strided patches (cheap for a wide kernel at a low rate, such as 400 taps every 160
        samples; float32, as the layer is, which halves the cost: 12 % of the bundled model's int8
        encoding time went to these statistics in float64).
        """
        if self.fixed is not None:
            return self.fixed
        if self.weight is None:
            return np.zeros(self.channels, np.float32), np.ones(self.channels, np.float32)
        kernel = self.weight.shape[-1]
        steps = (len(audio) - kernel) // self.stride + 1
        if steps * self.channels < (steps + self.channels) * kernel:
            patches = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float32), kernel)[::self.stride]
            out = patches @ self.weight.astype(np.float32).T
            mean, var = out.mean(axis=0, dtype=np.float64), out.var(axis=0, dtype=np.float64)
        else:
            patches = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), kernel)[::self.stride]
            w = self.weight.astype(np.float64)
            mean = w @ patches.mean(axis=0)
            second = patches.T @ patches / len(patches)
            var = np.maximum(((w @ second) * w).sum(axis=1) - mean**2, 0.0)
        if self.bias is not None:
            mean = mean + self.bias
        return mean.astype(np.float32), var.astype(np.float32)

    def to_json(self) -> dict:
        """The weights as base64 float32 bytes: exact, and a quarter of their decimal text (2.2 MB for
        a 400-tap first layer of 256 channels)."""
        return {"channels": self.channels, "stride": self.stride,
                "weight": _encoded(self.weight), "bias": _encoded(self.bias)}

    @staticmethod
    def from_json(data: dict) -> FirstLayerStats:
        return FirstLayerStats(int(data["channels"]), int(data["stride"]), _decoded(data["weight"]), _decoded(data["bias"]))


@dataclass
class RunningStatistics:
    """First-layer statistics over the voiced audio a stream has heard, older audio fading with
    ``memory_s``: what a chunk is normalised with instead of its own statistics alone.

    A chunk is a second or less, often a word's onset or mostly silence; normalised over itself, the
    frames it makes differ from those of the whole word (docs/model-v10-runs.md). A stream's microphone
    and speaker change slowly, so its recent voiced audio is a better estimate of the statistics a
    whole utterance would give, and it stays causal. Each chunk's statistics (over its context too) count
    with the weight of its new audio: an approximation of the statistics of the audio itself."""

    memory_s: float
    _weight: float = 0.0
    _first: np.ndarray = field(default=None, repr=False)
    _second: np.ndarray = field(default=None, repr=False)

    def blend(self, mean: np.ndarray, var: np.ndarray, new_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Take in a chunk's own statistics, weighted by its ``new_s`` seconds of new audio, and return
        the running ones."""
        second = var.astype(np.float64) + mean.astype(np.float64) ** 2
        if self._first is None:
            self._first, self._second = np.zeros_like(second), np.zeros_like(second)
        fade = math.exp(-new_s / self.memory_s)
        self._weight = fade * self._weight + new_s
        self._first = fade * self._first + new_s * mean
        self._second = fade * self._second + new_s * second
        if self._weight <= 0:
            return mean, var
        m = self._first / self._weight
        return m.astype(np.float32), np.maximum(self._second / self._weight - m**2, 0.0).astype(np.float32)


def _encoded(array: np.ndarray | None) -> dict | None:
    if array is None:
        return None
    return {"shape": list(array.shape), "float32": base64.b64encode(array.astype("<f4").tobytes()).decode("ascii")}


def _decoded(data: dict | None) -> np.ndarray | None:
    if data is None:
        return None
    return np.frombuffer(base64.b64decode(data["float32"]), "<f4").reshape(data["shape"]).astype(np.float32)
