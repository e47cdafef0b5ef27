"""The student's forward pass as `kwstream listen` computes it, in one differentiable pass over a clip.

Training sees whole clips; the live pipeline encodes ~1 s chunks (``kwstream.stream.chunked``), and
what a chunk makes of its audio differs: version 10 reads 120 held-out real clips at greedy CER 0.205
whole and 0.388 streamed (docs/model-v10-runs.md, "Streams are not clips"). The difference is
mostly the CNN's first layer, normalised per channel over each chunk (a quarter to one second,
often a word's onset or silence), and the frames it makes are kept for the rest of the word; then
attention that reaches only the chunk's context.

``stream_plan`` replays the chunker's bookkeeping for a clip's length: for every chunk, the audio it
reads, the frames whose CNN output it computes or is handed, the frames whose states it attends to
and the frames that become final in it. ``streamed_forward`` then runs the model chunk by chunk as
the chunker does (the CNN's first layer normalised with each chunk's statistics, at its audio
level; ``kwstream.model.stages.ContextTransformerStage`` for the transformer), in torch, so that
a loss on what a stream computes trains the model: on real clips its log-probabilities match
``ChunkedEncoder``'s to 1e-2 (``tests/test_training_stream_shaped.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2ForCTC

from kwstream.audio.io import SAMPLE_RATE
from kwstream.model.checkpoint_files import fixed_statistics
from kwstream.model.encoder import MIN_NEW_FRAMES
from kwstream.model.stages import ContextTransformerStage, TransformerStage
from kwstream.stream.pipeline import PipelineSettings
from training.evaluate import normalize_audio
from training.vocab import decode_ctc


@dataclass(frozen=True)
class Chunk:
    """One step of the chunker, in samples and frames counted from the clip's start."""

    audio_start: int
    audio_stop: int
    first_frame: int  # the first frame of its audio (left context included)
    total_frames: int  # frames its audio makes, counted from frame 0
    cnn_from: int  # the first frame whose CNN output it computes (earlier ones are handed on)
    attended: int  # frames from first_frame on whose states (from their own chunks) it attends to
    final_from: int  # the frames [final_from, final_to) become final in it
    final_to: int


def frames_for(samples: int, kernels: list[int], strides: list[int]) -> int:
    for kernel, stride in zip(kernels, strides, strict=True):
        samples = (samples - kernel) // stride + 1
    return max(0, samples)


def stream_plan(samples: int, kernels: list[int], strides: list[int], hop: int, left: int, right: int,
                first_stop: int) -> list[Chunk]:
    """The chunks ``ChunkedEncoder.frames`` makes of a ``samples``-long span read every ``hop`` samples
    from ``first_stop`` on, then once more at its end; the last chunk also makes its provisional
    frames final, as the stream scores them."""
    spf = math.prod(strides)
    left_frames = -(-left // spf)
    stops = list(range(first_stop, samples, hop)) + [samples]
    chunks: list[Chunk] = []
    final_to = 0
    previous: tuple[int, int] | None = None  # the previous chunk's first and total frames
    for n, stop in enumerate(stops):
        first = max(0, final_to - left_frames)
        made = frames_for(stop - first * spf, kernels, strides)
        final = final_to - first
        available = previous[1] - first if previous is not None and final > 0 else 0
        known = max(0, min(available, made - MIN_NEW_FRAMES))
        total = first + made
        new_final = total if n == len(stops) - 1 else max(final_to, min(total, frames_for(stop - right, kernels, strides)))
        attended = min(final, known) if available else 0
        chunks.append(Chunk(first * spf, stop, first, total, first + known, attended, final_to, new_final))
        final_to, previous = new_final, (first, total)
    return chunks


def _receptive_field(kernels: list[int], strides: list[int]) -> int:
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field += (kernel - 1) * jump
        jump *= stride
    return field


def _window_moments(start: int, stop: int, cumulative: tuple[torch.Tensor, torch.Tensor]):
    """Mean and biased variance over ``values[..., start:stop]`` from cumulative sums (float64)."""
    total, square = cumulative
    count = stop - start
    mean = (total[..., stop] - total[..., start]) / count
    return mean, (square[..., stop] - square[..., start]) / count - mean**2


def _cumulative(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values = values.double()
    pad = lambda t: nn.functional.pad(t.cumsum(-1), (1, 0))  # noqa: E731
    return pad(values), pad(values**2)


def streamed_forward(model: Wav2Vec2ForCTC, audio: torch.Tensor, hop: int, left: int, right: int,
                     first_stop: int) -> list[torch.Tensor]:
    """The blocks' input, then each block's output (the last through the final layer norm), of
    ``model`` on (batch, samples) clip-normalised audio, as the chunker computes them; the same
    list ``training.frontend.student_forward`` gives for whole clips."""
    w2v = model.wav2vec2
    cfg = model.config
    if not cfg.do_stable_layer_norm or cfg.feat_extract_norm != "group" or fixed_statistics(cfg.to_dict()) is not None:
        raise ValueError("the streamed forward follows pre-layer-norm wav2vec2 whose CNN normalises each chunk "
                         "(version 10's shape, without fixed statistics)")
    plan = stream_plan(audio.shape[1], cfg.conv_kernel, cfg.conv_stride, hop, left, right, first_stop)
    conv_layers = w2v.feature_extractor.conv_layers
    raw = conv_layers[0].conv(audio[:, None])  # (batch, channels, steps): no bias, so level and offset scale out
    sums = _cumulative(raw), _cumulative(audio)
    stage = ContextTransformerStage(TransformerStage(model, has_ctc_head=False))
    final: list[list[torch.Tensor]] = [[] for _ in range(cfg.num_hidden_layers + 1)]  # per level, final frames in order
    previous, previous_first = None, 0
    for chunk in plan:
        if chunk.total_frames <= chunk.first_frame + chunk.attended:
            continue  # too little audio yet for a frame
        cnn = _chunk_cnn(conv_layers, raw, audio, sums, chunk, cfg)
        if chunk.cnn_from > chunk.first_frame:
            cnn = torch.cat([previous[:, chunk.first_frame - previous_first: chunk.cnn_from - previous_first], cnn], 1)
        context = torch.stack([torch.cat(level, 1)[:, chunk.first_frame: chunk.first_frame + chunk.attended]
                               for level in final[:-1]]) if chunk.attended else \
            raw.new_zeros(cfg.num_hidden_layers, len(audio), 0, cfg.hidden_size)
        hidden = stage(cnn[:, :chunk.attended], cnn[:, chunk.attended:], context)
        begin = chunk.final_from - chunk.first_frame - chunk.attended
        for level, states in zip(final, hidden, strict=True):
            level.append(states[:, begin: begin + chunk.final_to - chunk.final_from])
        previous, previous_first = cnn, chunk.first_frame
    outputs = [torch.cat(level, 1) for level in final]
    outputs[-1] = w2v.encoder.layer_norm(outputs[-1])
    return outputs


def _chunk_cnn(conv_layers: nn.ModuleList, raw: torch.Tensor, audio: torch.Tensor, sums, chunk: Chunk, cfg) -> torch.Tensor:
    """(batch, frames, channels): the CNN output of frames [cnn_from, total_frames), the first layer
    normalised with the statistics of the chunk's audio, at the chunk's audio level."""
    first_layer = conv_layers[0]
    norm = first_layer.layer_norm
    stride1, ratio = cfg.conv_stride[0], math.prod(cfg.conv_stride[1:])
    steps_from = chunk.audio_start // stride1
    steps_to = steps_from + (chunk.audio_stop - chunk.audio_start - cfg.conv_kernel[0]) // stride1 + 1
    mean, var = _window_moments(steps_from, steps_to, sums[0])
    _, level = _window_moments(chunk.audio_start, chunk.audio_stop, sums[1])
    count = chunk.audio_stop - chunk.audio_start
    level = level * count / max(count - 1, 1) + 1e-7  # the encoder normalises with var(ddof=1) + 1e-7
    scale = torch.rsqrt(var + norm.eps * level[:, None]).float()
    reach = _receptive_field(cfg.conv_kernel[1:], cfg.conv_stride[1:])
    x = raw[:, :, chunk.cnn_from * ratio: (chunk.total_frames - 1) * ratio + reach]
    x = (x - mean[..., None].float()) * scale[..., None] * norm.weight[:, None] + norm.bias[:, None]
    x = first_layer.activation(x)
    for layer in conv_layers[1:]:
        x = layer(x)
    return x.transpose(1, 2)


@dataclass(frozen=True)
class StreamShape:
    """How the live pipeline cuts a span into chunks, in samples."""

    hop: int
    left: int
    right: int

    @classmethod
    def of(cls, settings: PipelineSettings) -> StreamShape:
        rate = SAMPLE_RATE
        return cls(int(settings.hop_s * rate), int(settings.left_context_s * rate), int(settings.right_context_s * rate))

    def forward(self, model: Wav2Vec2ForCTC, audio: torch.Tensor, first_stop: int | None = None) -> list[torch.Tensor]:
        """``streamed_forward`` with this shape, the first chunk read ``first_stop`` samples in (a hop by default)."""
        return streamed_forward(model, audio, self.hop, self.left, self.right, first_stop or self.hop)


@torch.no_grad()
def transcribe_streamed(model: Wav2Vec2ForCTC, audios: list[np.ndarray], shape: StreamShape) -> list[str]:
    """Greedy CTC transcripts of clips as a stream of each reads them."""
    model.eval()
    texts = []
    for audio in audios:
        outputs = shape.forward(model, torch.from_numpy(normalize_audio(audio))[None])
        texts.append(decode_ctc(model.lm_head(outputs[-1])[0].argmax(-1).tolist()))
    return texts
