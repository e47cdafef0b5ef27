"""Load a wav2vec2 checkpoint once and turn 16 kHz audio into per-frame log-probabilities and features.

The jobs around it live beside it: ``resolve`` (which model a spec names, hub probe included),
``checkpoint`` (loading, spelling, fingerprint), ``stages`` (the model as a CNN stage and a
transformer stage that streaming can reuse) and ``backends`` (who runs the stages: PyTorch or ONNX
Runtime, behind one protocol). ``Encoder`` joins them and owns what a pass computes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from kwstream.errors import ModelLoadError
from kwstream.model.backends import make_backend
from kwstream.model.checkpoint import digest, load_checkpoint, torch_device
from kwstream.model.resolve import AUTO_MODEL

log = logging.getLogger(__name__)

MIN_NEW_FRAMES = 2
"""Frames the CNN computes at least when earlier ones are reused (short audio makes none)."""
BACKENDS = ("auto", "onnx", "torch")


@dataclass(frozen=True)
class EncoderSettings:
    model: str = AUTO_MODEL
    """``auto``, a hub id, or a local directory in ``save_pretrained`` layout."""
    device: str = "cpu"
    """``cpu``, ``cuda`` or ``mps``."""
    threads: int | None = None
    """Torch intra-op threads; None keeps torch's default (all cores)."""
    int8: bool = False
    """Dynamic int8 quantisation of the linear layers (CPU only): faster, scores change slightly."""
    backend: str = "auto"
    """``onnx``: the model exported once and run by ONNX Runtime (CPU only; same numbers, about 1.5×
    faster); ``torch``: PyTorch; ``auto``: onnx on the CPU, falling back to torch with a notice when
    the model cannot be exported."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class EncodedFrames:
    """What one encoder pass gives for a stretch of audio, one row per frame (20 ms for wav2vec2)."""

    log_probs: np.ndarray | None
    """(frames, vocab) CTC log-probabilities, or None for a model without a CTC head."""
    features: dict[int, np.ndarray]
    """Hidden states by layer, each (frames, hidden): layer 0 enters the transformer, layer i leaves its i-th block."""
    cnn: np.ndarray | None = None
    """(frames, channels) output of the CNN feature encoder, which a later chunk may reuse."""
    states: np.ndarray | None = None
    """(layers, frames, hidden) input of every transformer layer, which a later chunk may attend to
    instead of recomputing (only when asked for: ``Encoder.encode(keep_states=True)``)."""

    def __len__(self) -> int:
        if self.log_probs is not None:
            return len(self.log_probs)
        return len(next(iter(self.features.values()))) if self.features else 0

    def slice(self, start: int, stop: int) -> EncodedFrames:
        """Frames [start, stop)."""
        return EncodedFrames(
            None if self.log_probs is None else self.log_probs[start:stop],
            {layer: f[start:stop] for layer, f in self.features.items()},
            None if self.cnn is None else self.cnn[start:stop],
            None if self.states is None else self.states[:, start:stop],
        )

    @staticmethod
    def concat(parts: list[EncodedFrames]) -> EncodedFrames:
        """The frames of ``parts`` one after the other (each part with the same fields)."""
        def join(arrays, axis=0):
            return None if arrays[0] is None else np.concatenate(arrays, axis)

        return EncodedFrames(
            join([p.log_probs for p in parts]),
            {layer: np.concatenate([p.features[layer] for p in parts]) for layer in parts[0].features},
            join([p.cnn for p in parts]),
            join([p.states for p in parts], axis=1),
        )


class Encoder:
    """A wav2vec2 checkpoint: 16 kHz float32 audio in; per-frame CTC log-probabilities (when the
    model has a CTC head) and hidden states of chosen layers out."""

    def __init__(self, settings: EncoderSettings = EncoderSettings()) -> None:
        import torch

        from kwstream.model.stages import context_stage, split_model

        self.device = torch_device(settings.device)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        checkpoint = load_checkpoint(settings.model)
        model = checkpoint.model
        self.name = checkpoint.name
        self.has_ctc_head = checkpoint.has_ctc_head
        self.tokens = checkpoint.tokens
        self.blank_id = checkpoint.blank_id
        self.delimiter_id = checkpoint.delimiter_id
        self.normalize = checkpoint.normalize
        self.parameters = sum(p.numel() for p in model.parameters())
        self.layers = int(model.config.num_hidden_layers)
        self.fingerprint = digest(model.base_model)
        lm_head_digest = digest(model.lm_head) if self.has_ctc_head else ""  # a random head: not part of any key
        self.samples_per_frame = math.prod(model.config.conv_stride)
        self._conv = list(zip(model.config.conv_kernel, model.config.conv_stride))
        self._model = model
        self._cnn, transformer = split_model(model, self.has_ctc_head)
        context = context_stage(transformer)
        self.attends_to_states = context is not None
        """Whether ``encode`` runs the transformer only after reused frames that carry ``states``."""
        if context is None:
            log.info("%s: chunks recompute the transformer's left context (its layers are not wav2vec2's)", self.name)
        else:
            transformer = context
        self._no_context = (np.zeros((0, model.config.conv_dim[-1]), np.float32),
                            np.zeros((self.layers, 0, model.config.hidden_size), np.float32))
        self._backend = make_backend(settings.backend, self.device, self._cnn, transformer,
                                     self.fingerprint + lm_head_digest, settings.int8, settings.threads)

    @property
    def transformer_blocks(self):
        """The checkpoint's transformer blocks (float PyTorch modules), for a head that trains copies of the top ones."""
        return self._model.base_model.encoder.layers

    def frames_for(self, samples: int) -> int:
        """How many frames the CNN makes of ``samples`` samples (frame i starts at sample
        ``i * samples_per_frame`` and needs the CNN's whole receptive field after it)."""
        for kernel, stride in self._conv:
            samples = (samples - kernel) // stride + 1
        return max(0, samples)

    def reusable_frames(self, samples: int, available: int) -> int:
        """How many of ``available`` earlier frames a pass over ``samples`` samples takes instead of
        computing them (all but the last few: short audio makes none)."""
        return max(0, min(available, self.frames_for(samples) - MIN_NEW_FRAMES))

    def require_ctc_head(self) -> None:
        """Raise the error a user sees when typed keywords meet a model that cannot spell."""
        if not self.has_ctc_head:
            raise ModelLoadError(
                f"model {self.name!r} has no trained CTC head (a pretrained-only checkpoint?): typed keywords need a "
                "CTC fine-tuned model; enrolled keywords and classifiers work with this one"
            )

    def check_layer(self, layer: int) -> None:
        if not 0 <= layer <= self.layers:
            raise ModelLoadError(f"model {self.name!r} has layers 0-{self.layers}, not {layer}")

    def encode(self, audio: np.ndarray, layers: tuple[int, ...] = (), reuse: EncodedFrames | None = None,
               context_frames: int = 0, keep_states: bool = False) -> EncodedFrames:
        """One pass over ``audio``: log-probabilities (if the model has a CTC head), the hidden
        states of ``layers`` and the CNN's output, one row per ``samples_per_frame`` samples.

        ``reuse``: an earlier pass's frames (with ``cnn``) for the audio's first frames; the CNN then
        runs only on the audio after them (with statistics of all of ``audio``). ``context_frames``:
        how many of them (from the first, with ``states``) lend their states too; the transformer
        then runs only on the frames after them, attending to those states, and returns them as
        given. ``keep_states``: return ``states``.
        """
        x = np.ascontiguousarray(audio, dtype=np.float32)
        if self.normalize:
            x = ((x - x.mean()) / np.sqrt(x.var(ddof=1) + 1e-7)).astype(np.float32)
        mean, var = self._cnn.stats(x)
        known = 0 if reuse is None else self.reusable_frames(len(x), len(reuse))
        new = x[known * self.samples_per_frame:]
        cnn = self._backend.cnn(new, mean, var)
        if known:
            cnn = np.concatenate([reuse.cnn[:known], cnn])
        hidden = sorted(set(layers) | (set(range(self.layers)) if keep_states else set()))
        attended = min(context_frames, known) if self.attends_to_states and known and reuse.states is not None else 0
        if not attended:
            return self._frames(self._transform(hidden, cnn), layers, cnn, keep_states)
        left = reuse.slice(0, attended)
        outputs = self._transform(hidden, cnn[attended:], left.cnn, left.states)
        left = replace(left, features={layer: left.features[layer] for layer in layers}, states=left.states if keep_states else None)
        return EncodedFrames.concat([left, self._frames(outputs, layers, cnn[attended:], keep_states)])

    def _transform(self, hidden: list[int], cnn: np.ndarray, left_cnn: np.ndarray | None = None,
                   states: np.ndarray | None = None) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
        """Log-probabilities (or None) and the ``hidden`` layers' states for the CNN frames ``cnn``,
        attending to the frames before them (``left_cnn``, with their ``states``) when given."""
        if self.attends_to_states:
            left_cnn, states = self._no_context if left_cnn is None else (left_cnn, states)
            inputs = (left_cnn[None], cnn[None], states[:, None])
        else:
            inputs = (cnn[None],)
        return self._backend.transformer(hidden, *inputs)

    def _frames(self, outputs, layers: tuple[int, ...], cnn: np.ndarray, keep_states: bool) -> EncodedFrames:
        log_probs, hidden = outputs
        states = np.stack([hidden[layer] for layer in range(self.layers)]) if keep_states else None
        return EncodedFrames(log_probs, {layer: hidden[layer] for layer in layers}, cnn, states)

    def log_probs(self, audio: np.ndarray) -> np.ndarray:
        """Per-frame CTC log-probabilities, shape (frames, vocab)."""
        self.require_ctc_head()
        return self.encode(audio).log_probs
