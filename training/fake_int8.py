"""Train a model to survive `--int8`: its linear layers see the rounding ONNX Runtime's dynamic int8 gives them.

`kwstream --int8` quantises the transformer graph's matrix products with ONNX Runtime's dynamic
quantiser (``kwstream.model.onnx_backend``): each weight matrix, and each input per call
(``DynamicQuantizeLinear``), per tensor to unsigned 8 bits over its own range widened to hold 0.
Version 10's weights lose a few of the bench's detections that way (78 -> 72 of 150). Quantisation-aware fine-tuning puts the same rounding into the forward pass, with the
straight-through estimator (rounding passes gradients unchanged), so the weights move to where the
rounding costs little. The module's parameters and state dict are untouched: the saved model is
plain float32, the same shape, and runs in float32 too.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

QUANTISED_LINEARS = ("q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense", "lm_head")
"""The linear layers whose matrix products the int8 graph computes in int8: every MatMul with a weight but
the feature projection's (``kwstream.model.onnx_backend.feature_projection_products``)."""


def _straight_through(x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    return x + (rounded - x).detach()


def _uint8_rounding(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``x`` through unsigned 8 bits over [min(0, low), max(0, high)], the quantiser's grid."""
    low, high = low.clamp(max=0), high.clamp(min=0)
    scale = ((high - low) / 255).clamp(min=1e-8)
    zero = (-low / scale).round().clamp(0, 255)
    return _straight_through(x, ((x / scale).round() + zero).clamp(0, 255).sub(zero).mul(scale))


def fake_uint8_weight(weight: torch.Tensor) -> torch.Tensor:
    """A weight matrix as the quantiser stores it (``QuantType.QUInt8``: per tensor, asymmetric)."""
    w = weight.detach()
    return _uint8_rounding(weight, w.min(), w.max())


def fake_uint8_activation(x: torch.Tensor) -> torch.Tensor:
    """``DynamicQuantizeLinear`` on each example of a (batch, frames, channels) input, over that
    example's own range, as a streamed chunk is quantised on its own."""
    flat = x.detach().reshape(x.shape[0], -1)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return _uint8_rounding(x, flat.min(-1).values.reshape(shape), flat.max(-1).values.reshape(shape))


def _int8_forward(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.linear(fake_uint8_activation(x), fake_uint8_weight(linear.weight), linear.bias)


def make_int8_aware(model: nn.Module) -> int:
    """Give every quantised linear layer of ``model`` int8 rounding in its forward pass; returns how many."""
    count = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.endswith(QUANTISED_LINEARS):
            module.forward = partial(_int8_forward, module)
            count += 1
    return count
