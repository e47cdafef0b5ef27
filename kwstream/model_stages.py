"""A wav2vec2 checkpoint as two stages, so that streaming can reuse the CNN's frames.

The CNN feature encoder makes one frame per 20 ms from 25 ms of audio: a local computation,
except that in group-norm checkpoints (``feat_extract_norm="group"``: wav2vec2-base-960h, ours) its
first layer normalises each channel over the whole input. With those per-channel statistics given
from outside, the CNN of any stretch of a chunk equals that stretch of the CNN of the whole chunk,
so the chunker computes each frame's CNN output once, when the frame becomes final, and hands it
back as the next chunks' left context instead of recomputing it (the CNN is about 40 % of a
wav2vec2-base pass, and int8 does not speed it up). The transformer stage is the checkpoint's own
``forward`` with the CNN taken out: it receives the CNN's frames as its input.
"""

from __future__ import annotations

import numpy as np
import torch

from kwstream.errors import ModelLoadError

SPLIT_TOLERANCE = 1e-3
"""Largest difference, in log-probability or hidden state, allowed between the two stages and the
whole model on the check run at load."""


def first_layer_stats(audio: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (biased) variance over time of the first convolution's output on
    ``audio``: what its GroupNorm normalises with. From the patches' first and second moments, so
    it costs a (kernel x kernel) product rather than the convolution itself.

    Args:
        weight: the convolution's (channels, 1, kernel) weights.
    """
    kernel = weight.shape[-1]
    patches = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), kernel)[::stride]
    w = weight.reshape(len(weight), kernel).astype(np.float64)
    mean = w @ patches.mean(axis=0)
    second = patches.T @ patches / len(patches)
    var = np.maximum(np.einsum("ck,kl,cl->c", w, second, w) - mean**2, 0.0)
    if bias is not None:
        mean = mean + bias
    return mean.astype(np.float32), var.astype(np.float32)


def _group_norm_first_layer(feature_extractor):
    """The first conv layer when it is the group-norm kind (conv, GroupNorm over time, activation),
    None when no layer normalises over time, and an error for any other arrangement."""
    layers = list(feature_extractor.conv_layers)
    norms = [layer for layer in layers if isinstance(getattr(layer, "layer_norm", None), torch.nn.GroupNorm)]
    if not norms:
        return None
    if norms != layers[:1] or not all(hasattr(layers[0], name) for name in ("conv", "activation")):
        raise ModelLoadError("this checkpoint's CNN normalises over time in a way kwstream does not know")
    return layers[0]


class CnnStage(torch.nn.Module):
    """The CNN feature encoder as ``forward(audio (1, samples), mean (C,), var (C,)) -> (1, C, frames)``,
    with its first layer's GroupNorm statistics as inputs (unused when it has no GroupNorm)."""

    def __init__(self, feature_extractor) -> None:
        super().__init__()
        self.layers = feature_extractor.conv_layers
        self.first = _group_norm_first_layer(feature_extractor)

    def stats(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The statistics ``forward`` needs for a chunk of (normalised) audio."""
        conv = self.layers[0].conv
        if self.first is None:
            return np.zeros(conv.out_channels, np.float32), np.ones(conv.out_channels, np.float32)
        bias = None if conv.bias is None else conv.bias.detach().cpu().numpy().astype(np.float64)
        return first_layer_stats(audio, conv.weight.detach().cpu().numpy(), bias, conv.stride[0])

    def forward(self, audio, mean, var):
        x = audio[:, None]
        rest = self.layers
        if self.first is not None:
            norm = self.first.layer_norm
            x = self.first.conv(x)
            x = (x - mean[:, None]) * torch.rsqrt(var[:, None] + norm.eps) * norm.weight[:, None] + norm.bias[:, None]
            x = self.first.activation(x)
            rest = self.layers[1:]
        for layer in rest:
            x = layer(x)
        return x.transpose(1, 2)


class TransformerStage(torch.nn.Module):
    """The rest of the checkpoint as ``forward(frames (1, frames, C)) -> (log-probabilities, hidden
    state of every layer)``, the log-probabilities only when ``has_ctc_head``."""

    def __init__(self, model, has_ctc_head: bool) -> None:
        super().__init__()
        self.model = model
        self.has_ctc_head = has_ctc_head

    def forward(self, frames):
        out = self.model(frames.transpose(1, 2), output_hidden_states=True)
        hidden = tuple(out.hidden_states)
        return ((torch.log_softmax(out.logits, dim=-1),) if self.has_ctc_head else ()) + hidden



def split_model(model, has_ctc_head: bool) -> tuple[CnnStage, TransformerStage]:
    """``model`` as its CNN stage and the rest (the model itself, its CNN replaced by an identity).
    The two stages are checked against the whole model on a short noise; a checkpoint whose forward
    does not split this way is refused with a one-line error."""
    base = model.base_model
    if not hasattr(base, "feature_extractor"):
        raise ModelLoadError(f"{type(model).__name__} has no CNN feature encoder; kwstream needs a wav2vec2-style model")
    cnn = CnnStage(base.feature_extractor)
    noise = np.random.default_rng(0).normal(0, 1, 8000).astype(np.float32)
    with torch.inference_mode():
        out = model(torch.from_numpy(noise)[None], output_hidden_states=True)
        expected = ((torch.log_softmax(out.logits, dim=-1),) if has_ctc_head else ()) + tuple(out.hidden_states)
    base.feature_extractor = torch.nn.Identity()
    transformer = TransformerStage(model, has_ctc_head)
    with torch.inference_mode():
        got = transformer(cnn(torch.from_numpy(noise)[None], *map(torch.from_numpy, cnn.stats(noise))))
    difference = max(float((a - b).abs().max()) for a, b in zip(expected, got))
    if difference > SPLIT_TOLERANCE:
        raise ModelLoadError(f"{type(model).__name__} does not split into CNN and transformer stages (off by {difference:.2g})")
    return cnn, transformer
