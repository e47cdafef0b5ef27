"""A wav2vec2 checkpoint as two stages, so that streaming can reuse what earlier chunks computed.

The CNN feature encoder makes one frame per 20 ms from 25 ms of audio: a local computation,
except that in group-norm checkpoints (``feat_extract_norm="group"``: wav2vec2-base-960h, ours) its
first layer normalises each channel over the whole input. With those per-channel statistics given
from outside, the CNN of any stretch of a chunk equals that stretch of the CNN of the whole chunk,
so the chunker computes each frame's CNN output once, when its audio arrives, and hands it on to
the next chunks instead of recomputing it.

The transformer stage is the checkpoint's own ``forward`` with the CNN taken out
(``TransformerStage``), or, for wav2vec2's layers, ``ContextTransformerStage``: the same network
for a chunk's newest frames only, attending at each layer to the states that the older frames had
there when their own chunk computed them. Given the states the whole model gives those frames, it
gives the newest frames exactly the whole model's numbers (checked at load), so what changes in
streaming is only that a left frame's states come from the chunk in which it became final rather
than being recomputed at the edge of the next one.
"""

from __future__ import annotations

import numpy as np
import torch

from kwstream.errors import ModelLoadError
from kwstream.model.cnn_stats import FirstLayerStats

SPLIT_TOLERANCE = 1e-3
"""Largest difference, in log-probability or hidden state, allowed between the two stages and the
whole model on the check run at load."""


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
    """The CNN feature encoder as ``forward(audio (1, samples), mean (C,), var (C,)) -> (1, frames, C)``,
    with its first layer's GroupNorm statistics as inputs (unused when it has no GroupNorm)."""

    def __init__(self, feature_extractor) -> None:
        super().__init__()
        self.layers = feature_extractor.conv_layers
        self.first = _group_norm_first_layer(feature_extractor)

    def statistics(self) -> FirstLayerStats:
        """How to compute ``forward``'s ``mean`` and ``var`` for a chunk of (normalised) audio."""
        conv = self.layers[0].conv
        if self.first is None:
            return FirstLayerStats(conv.out_channels, conv.stride[0])
        weight = conv.weight.detach().cpu().numpy()
        bias = None if conv.bias is None else conv.bias.detach().cpu().numpy()
        return FirstLayerStats(conv.out_channels, conv.stride[0], weight.reshape(len(weight), -1), bias)

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


class ContextTransformerStage(torch.nn.Module):
    """The transformer stage for a chunk's newest frames, with the older ones as context:
    ``forward(left_cnn (1, K, C), cnn (1, Q, C), context (layers, 1, K, hidden))`` gives what
    ``TransformerStage`` gives for the Q frames, ``context[i]`` being the K frames' input to layer i.

    Only the Q frames pass through the layers' projections and feed-forward blocks; the K frames
    take part as keys and values (and in the positional convolution, as the CNN frames before).
    """

    def __init__(self, transformer: TransformerStage) -> None:
        super().__init__()
        self.model = transformer.model
        self.has_ctc_head = transformer.has_ctc_head
        self.pre_norm = bool(self.model.config.do_stable_layer_norm)

    def forward(self, left_cnn, cnn, context):
        base = self.model.base_model
        encoder = base.encoder
        x = base.feature_projection(torch.cat([left_cnn, cnn], 1))[0]
        known = left_cnn.shape[1]
        x = x[:, known:] + self._positions(x, known)
        if not self.pre_norm:
            x = encoder.layer_norm(x)
        hidden = [x]
        for layer, left in zip(encoder.layers, context):
            x = self._layer(layer, x, left)
            hidden.append(x)
        if not self.has_ctc_head:
            return tuple(hidden)
        logits = self.model.lm_head(encoder.layer_norm(x) if self.pre_norm else x)
        return (torch.log_softmax(logits, dim=-1),) + tuple(hidden)

    def _positions(self, x, start: int):
        """The positional convolution's output (``Wav2Vec2PositionalConvEmbedding``) for the frames
        of ``x`` from ``start`` on only: of a wav2vec2-base pass, it costs as much as a layer."""
        embedding = self.model.base_model.encoder.pos_conv_embed
        conv = embedding.conv
        padded = torch.nn.functional.pad(x.transpose(1, 2), (conv.padding[0], conv.padding[0]))
        out = torch.nn.functional.conv1d(padded[:, :, start:], conv.weight, conv.bias, groups=conv.groups)
        return embedding.activation(out[:, :, :x.shape[1] - start]).transpose(1, 2)

    def _layer(self, layer, x, left):
        """One encoder layer (``Wav2Vec2EncoderLayer[StableLayerNorm]``) for the frames ``x``,
        attending to ``left`` and to themselves."""
        if self.pre_norm:
            queries = layer.layer_norm(x)
            x = x + _attend(layer.attention, queries, torch.cat([layer.layer_norm(left), queries], 1))
            return x + layer.feed_forward(layer.final_layer_norm(x))
        x = layer.layer_norm(x + _attend(layer.attention, x, torch.cat([left, x], 1)))
        return layer.final_layer_norm(x + layer.feed_forward(x))


def _attend(attention, queries, keys_values):
    """``Wav2Vec2Attention`` (no mask, no dropout) with its keys and values from other frames than its queries."""
    batch, frames, _ = queries.shape
    heads, size = attention.num_heads, attention.head_dim
    split = lambda t: t.reshape(batch, -1, heads, size).transpose(1, 2)  # noqa: E731
    out = torch.nn.functional.scaled_dot_product_attention(
        split(attention.q_proj(queries)), split(attention.k_proj(keys_values)), split(attention.v_proj(keys_values)),
        scale=attention.scaling)
    return attention.out_proj(out.transpose(1, 2).reshape(batch, frames, heads * size))


def context_stage(transformer: TransformerStage) -> ContextTransformerStage | None:
    """``transformer`` for the newest frames with states as context, or None for a checkpoint whose
    layers do not follow wav2vec2's (the chunker then recomputes the left context). Checked
    against ``transformer`` on random frames."""
    model = transformer.model
    if getattr(model.config, "adapter_attn_dim", None) is not None or getattr(model.config, "add_adapter", False):
        return None  # adapter layers, which the stage leaves out
    channels = model.base_model.feature_projection.projection.in_features
    frames = torch.from_numpy(np.random.default_rng(1).normal(0, 1, (1, 30, channels)).astype(np.float32))
    known = 18
    try:
        stage = ContextTransformerStage(transformer)
        with torch.inference_mode():
            expected = transformer(frames)
            hidden = expected[1:] if transformer.has_ctc_head else expected
            context = torch.stack([h[:, :known] for h in hidden[:-1]])
            got = stage(frames[:, :known], frames[:, known:], context)
        difference = max(float((a[:, known:] - b).abs().max()) for a, b in zip(expected, got))
    except (AttributeError, TypeError, RuntimeError):
        return None
    return None if difference > SPLIT_TOLERANCE else stage


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
        got = transformer(cnn(torch.from_numpy(noise)[None], *map(torch.from_numpy, cnn.statistics().of(noise))))
    difference = max(float((a - b).abs().max()) for a, b in zip(expected, got))
    if difference > SPLIT_TOLERANCE:
        raise ModelLoadError(f"{type(model).__name__} does not split into CNN and transformer stages (off by {difference:.2g})")
    return cnn, transformer
