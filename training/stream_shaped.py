"""The student's forward pass as `kwstream listen` computes it, in one differentiable pass over a clip.

Training sees whole clips; the live pipeline encodes ~1 s chunks (``kwstream.stream.chunked``), and
what a chunk makes of its audio differs: version 10 reads 120 held-out real clips at greedy CER 0.205
whole and 0.388 streamed (docs/model-v10-runs.md, "Streams are not clips"). The difference is
mostly the CNN's first layer, normalised per channel over each chunk (a quarter to one second,
often a word's onset or silence), and the frames it makes are kept for the rest of the word; then
attention that reaches only the chunk's context.

``StreamShape.plan`` takes the chunker's own steps (``kwstream.stream.chunked.chunk_step``) over a
span's length: for every chunk, the audio it reads, the frames whose CNN output it computes or is
handed, the frames whose states it attends to and the frames that become final in it. ``streamed_forward`` then runs the model chunk
by chunk as the chunker does (each chunk's audio level and first-layer statistics;
``kwstream.model.stages.ContextTransformerStage`` for the transformer), in torch, so that a loss on
what a stream computes trains the model: on real clips its log-probabilities match
``ChunkedEncoder``'s to 1e-3 (``tests/test_training_stream_shaped.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2ForCTC

from kwstream.audio.io import SAMPLE_RATE
from kwstream.model.checkpoint_files import fixed_statistics
from kwstream.model.encoder import VARIANCE_FLOOR
from kwstream.model.stages import ContextTransformerStage, TransformerStage
from kwstream.stream.chunked import ChunkStep, chunk_step
from kwstream.stream.pipeline import PipelineSettings
from training.vocab import decode_ctc


@dataclass(frozen=True)
class Chunk:
    """One step of the chunker (``kwstream.stream.chunked.ChunkStep``) with the audio it reads, in
    samples from the span's start."""

    audio_start: int
    audio_stop: int
    step: ChunkStep

    @property
    def cnn_from(self) -> int:
        """The first frame whose CNN output it computes (earlier ones are handed on)."""
        return self.step.first_frame + self.step.reused_frames


@dataclass(frozen=True)
class StreamShape:
    """How the live pipeline cuts a span into chunks, in samples: a step every ``hop_samples``
    (the first a hop after the span starts), each with context on both sides."""

    hop_samples: int
    left_samples: int
    right_samples: int

    @classmethod
    def of(cls, settings: PipelineSettings) -> StreamShape:
        if settings.statistics_memory_s > 0:
            raise ValueError("the streamed forward normalises each chunk with its own statistics, not running ones")
        return cls(*(int(seconds * SAMPLE_RATE) for seconds in
                     (settings.hop_s, settings.left_context_s, settings.right_context_s)))

    def plan(self, samples: int, conv: Sequence[tuple[int, int]]) -> list[Chunk]:
        """The chunks ``ChunkedEncoder.frames`` makes of a ``samples``-long span read at every hop,
        then once more at its end; the last chunk also makes its provisional frames final, as the
        stream scores them when the span ends."""
        spf = math.prod(stride for _, stride in conv)
        left_frames = -(-self.left_samples // spf)
        stops = list(range(self.hop_samples, samples, self.hop_samples)) + [samples]
        chunks: list[Chunk] = []
        final_to, previous_total = 0, None
        for stop in stops:
            step = chunk_step(final_to, previous_total, stop, left_frames=left_frames, right_samples=self.right_samples,
                              conv=conv)
            chunks.append(Chunk(step.first_frame * spf, stop, step))
            final_to, previous_total = step.final_to, step.total_frames
        last = chunks[-1]
        chunks[-1] = replace(last, step=replace(last.step, final_to=last.step.total_frames))
        return chunks

    def forward(self, model: Wav2Vec2ForCTC, audio: torch.Tensor) -> list[torch.Tensor]:
        """``streamed_forward`` with this shape."""
        return streamed_forward(model, audio, self)


def streamed_forward(model: Wav2Vec2ForCTC, audio: torch.Tensor, shape: StreamShape) -> list[torch.Tensor]:
    """The blocks' input, then each block's output (the last through the final layer norm), of
    ``model`` on (batch, samples) raw audio, as the chunker computes them: the list
    ``training.frontend.student_forward`` gives for whole (normalised) clips. Each row is streamed
    as a span of the batch's length: a shorter clip as one followed by digital silence, as the
    whole-clip pass pads it."""
    w2v = model.wav2vec2
    cfg = model.config
    if not cfg.do_stable_layer_norm or cfg.feat_extract_norm != "group" or fixed_statistics(cfg.to_dict()) is not None:
        raise ValueError("the streamed forward follows pre-layer-norm wav2vec2 whose CNN normalises each chunk "
                         "(version 10's shape, without fixed statistics)")
    conv = list(zip(cfg.conv_kernel, cfg.conv_stride, strict=True))
    plan = shape.plan(audio.shape[1], conv)
    conv_layers = w2v.feature_extractor.conv_layers
    first_layer = conv_layers[0].conv(audio[:, None])  # (batch, channels, steps), before any chunk's normalisation
    sums = _cumulative(first_layer), _cumulative(audio)
    stage = ContextTransformerStage(TransformerStage(model, has_ctc_head=False))
    final: list[tuple[int, list[torch.Tensor]]] = []  # per chunk, its first final frame and every level's final frames
    previous, previous_first = None, 0
    for chunk in plan:
        step = chunk.step
        if step.total_frames == step.first_frame:
            continue  # too little audio for a frame
        cnn = _chunk_cnn(conv_layers, first_layer, sums, chunk, conv)
        if step.reused_frames:
            cnn = torch.cat([previous[:, step.first_frame - previous_first: chunk.cnn_from - previous_first], cnn], 1)
        attended = step.attended_frames
        if attended:
            context = torch.stack(_final_frames(final, step.first_frame, step.first_frame + attended, cfg.num_hidden_layers))
        else:
            context = audio.new_zeros(cfg.num_hidden_layers, len(audio), 0, cfg.hidden_size)
        hidden = stage(cnn[:, :attended], cnn[:, attended:], context)
        begin = step.final_from - step.first_frame - attended
        final.append((step.final_from, [states[:, begin: begin + step.final_to - step.final_from] for states in hidden]))
        previous, previous_first = cnn, step.first_frame
    outputs = _final_frames(final, 0, plan[-1].step.final_to)
    outputs[-1] = w2v.encoder.layer_norm(outputs[-1])
    return outputs


def _final_frames(final: list[tuple[int, list[torch.Tensor]]], start: int, stop: int,
                  levels: int | None = None) -> list[torch.Tensor]:
    """The first ``levels`` levels' (default: every level's) final frames [start, stop), from the chunks'
    pieces (read only where they overlap, so a chunk's left context costs its length, not the clip's)."""
    pieces = [(first, states) for first, states in final if first < stop and first + states[0].shape[1] > start]
    return [torch.cat([states[n][:, max(start - first, 0): stop - first] for first, states in pieces], 1)
            for n in range(len(final[0][1]) if levels is None else levels)]


Sums = tuple[torch.Tensor, torch.Tensor]


def _chunk_cnn(conv_layers: nn.ModuleList, first_layer: torch.Tensor, sums: tuple[Sums, Sums], chunk: Chunk,
               conv: list[tuple[int, int]]) -> torch.Tensor:
    """(batch, frames, channels): the CNN output of frames [cnn_from, total_frames) as the encoder
    computes it for the chunk's audio, normalised to zero mean and unit variance (with
    ``VARIANCE_FLOOR``), the first layer then normalised per channel over the chunk. The first
    layer has no bias, so both come down to its output on the raw audio, less the chunk's mean,
    over the square root of the chunk's variance plus GroupNorm's epsilon times the audio's."""
    norm = conv_layers[0].layer_norm
    (kernel, stride), ratio = conv[0], math.prod(s for _, s in conv[1:])
    steps_from = chunk.audio_start // stride
    steps_to = steps_from + (chunk.audio_stop - chunk.audio_start - kernel) // stride + 1
    mean, var = _window_moments(steps_from, steps_to, sums[0])
    _, level = _window_moments(chunk.audio_start, chunk.audio_stop, sums[1])
    count = chunk.audio_stop - chunk.audio_start
    level = level * count / max(count - 1, 1) + VARIANCE_FLOOR  # the encoder's var(ddof=1)
    scale = torch.rsqrt(var + norm.eps * level[:, None]).float()
    x = first_layer[:, :, chunk.cnn_from * ratio: (chunk.step.total_frames - 1) * ratio + cnn_field(conv[1:])[0]]
    x = (x - mean[..., None].float()) * scale[..., None] * norm.weight[:, None] + norm.bias[:, None]
    x = conv_layers[0].activation(x)
    for layer in conv_layers[1:]:
        x = layer(x)
    return x.transpose(1, 2)


def cnn_field(conv: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """(how many of its input's steps one output of a CNN of (kernel, stride) layers reads, input steps between
    outputs)."""
    field, jump = 1, 1
    for kernel, stride in conv:
        field += (kernel - 1) * jump
        jump *= stride
    return field, jump


def _cumulative(values: torch.Tensor) -> Sums:
    """Cumulative sums of ``values`` and of their squares along the last axis, from 0 (float64)."""
    values = values.double()
    return nn.functional.pad(values.cumsum(-1), (1, 0)), nn.functional.pad((values**2).cumsum(-1), (1, 0))


def _window_moments(start: int, stop: int, cumulative: Sums) -> Sums:
    """Mean and biased variance over steps [start, stop) from ``_cumulative`` sums."""
    total, square = cumulative
    count = stop - start
    mean = (total[..., stop] - total[..., start]) / count
    return mean, (square[..., stop] - square[..., start]) / count - mean**2


@torch.no_grad()
def transcribe_streamed(model: Wav2Vec2ForCTC, audios: list[np.ndarray], shape: StreamShape) -> list[str]:
    """Greedy CTC transcripts of clips as a stream of each reads them."""
    model.eval()
    texts = []
    for audio in audios:
        outputs = shape.forward(model, torch.from_numpy(np.asarray(audio, np.float32))[None])
        texts.append(decode_ctc(model.lm_head(outputs[-1])[0].argmax(-1).tolist()))
    return texts
