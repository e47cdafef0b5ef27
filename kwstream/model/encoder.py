"""Load a wav2vec2 checkpoint once and turn 16 kHz audio into per-frame log-probabilities and features.

The jobs around it live beside it: ``resolve`` (which model a spec names, hub probe included),
``checkpoint`` (loading, spelling, fingerprint), ``stages`` (the model as a CNN stage and a
transformer stage that streaming can reuse) and ``backends`` (who runs the stages: PyTorch or ONNX
Runtime, behind one protocol). ``Encoder`` joins them and owns what a pass computes.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kwstream.audio.io import SAMPLE_RATE
from kwstream.errors import ModelLoadError
from kwstream.model.backends import make_backend, runs_onnx
from kwstream.model.checkpoint import digest, load_checkpoint, torch_device
from kwstream.model.cnn_stats import RunningStatistics
from kwstream.model.checkpoint_files import Checkpoint, checkpoint_directory, read_checkpoint_files, weights_key
from kwstream.model.onnx_export import OnnxExport, cached_export_dir, find_export
from kwstream.model.resolve import AUTO_MODEL, resolve_model

log = logging.getLogger(__name__)

MIN_NEW_FRAMES = 2
"""Frames the CNN computes at least when earlier ones are reused (short audio makes none)."""
VARIANCE_FLOOR = 1e-7
"""Added to a pass's audio variance before it is normalised (``Wav2Vec2FeatureExtractor``'s)."""
BACKENDS = ("auto", "onnx", "torch")


def cnn_frames(samples: int, conv: Sequence[tuple[int, int]]) -> int:
    """How many frames a CNN of (kernel, stride) layers makes of ``samples`` samples (frame i starts
    at sample ``i * prod(strides)`` and needs the CNN's whole receptive field after it)."""
    for kernel, stride in conv:
        samples = (samples - kernel) // stride + 1
    return max(0, samples)


def limit_blas_threads(threads: int) -> None:
    """Let numpy's BLAS (the first-layer statistics' product, ``cnn_stats``) use at most ``threads``
    threads, process-wide and for as long as the process runs, as ``torch.set_num_threads`` does for
    PyTorch. OpenBLAS otherwise starts one thread per core in every process: on 2 cores,
    ``benchmarks/scan.py``'s hour cost one worker 263 CPU-s (129 limited), and two workers took 206 s
    where one took 134 (68 s limited)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    if max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=0) > threads:
        threadpool_limits(limits=threads, user_api="blas")


def reusable_frames(made: int, available: int) -> int:
    """How many of ``available`` earlier frames a pass that makes ``made`` frames takes instead of
    computing them: all but the last ``MIN_NEW_FRAMES`` (short audio makes none)."""
    return max(0, min(available, made - MIN_NEW_FRAMES))


@dataclass(frozen=True)
class EncoderSettings:
    model: str = AUTO_MODEL
    """``auto``, a hub id, or a local directory in ``save_pretrained`` layout."""
    device: str = "cpu"
    """``cpu``, ``cuda`` or ``mps``."""
    threads: int | None = None
    """The runtime's intra-op threads (ONNX Runtime or PyTorch); numpy's BLAS is limited to as many, for
    the whole process (``limit_blas_threads``). None keeps their defaults, one per core."""
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
    voice: np.ndarray | None = None
    """(frames, 96) the speech embedding beside each frame (``SpeechEmbedding.frames``), where a voice keyword
    needs it; added from the same audio by whoever has it (the pipeline, enrollment), never by the encoder."""

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
            None if self.voice is None else self.voice[start:stop],
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
            join([p.voice for p in parts]),
        )


class Encoder:
    """A wav2vec2 checkpoint: 16 kHz float32 audio in; per-frame CTC log-probabilities (when the
    model has a CTC head) and hidden states of chosen layers out.

    On the CPU with an ONNX export of the checkpoint at hand (``onnx_export.find_export``), it is
    opened from the checkpoint's JSON files and the export alone: neither torch nor transformers is
    imported. Otherwise the checkpoint is loaded with PyTorch, and under the onnx backend exported,
    after which no PyTorch copy of the weights is kept."""

    def __init__(self, settings: EncoderSettings = EncoderSettings()) -> None:
        self.device = settings.device
        """Where the model runs ("cpu", "cuda", "mps"), for status lines."""
        if settings.threads:
            limit_blas_threads(settings.threads)
        resolved = resolve_model(settings.model)
        directory = checkpoint_directory(*resolved)
        files = read_checkpoint_files(resolved[0], directory) if directory else None
        export = None
        if files and runs_onnx(settings.backend, settings.device):
            export = find_export(directory, weights_key(directory))
        if export:
            self._open_export(files, export, settings)
        else:
            self._load_checkpoint(resolved, settings)

    def _open_export(self, files: Checkpoint, export: OnnxExport, settings: EncoderSettings) -> None:
        from kwstream.model.onnx_backend import OnnxBackend

        self._model = None
        self._describe(files, export)
        self._backend = OnnxBackend(export, settings.int8, settings.threads)

    def _load_checkpoint(self, resolved: tuple[str, bool], settings: EncoderSettings) -> None:
        import torch

        from kwstream.model.onnx_backend import OnnxBackend

        device = torch_device(settings.device)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        checkpoint = load_checkpoint(settings.model, resolved)
        model = checkpoint.model
        # outside a directory (a hub download elsewhere), a digest of all the weights names the export
        key = weights_key(checkpoint.directory) if checkpoint.directory else digest(model)
        cnn, transformer, export = torch_stages(checkpoint, cached_export_dir(key), key)
        self._describe(checkpoint, export)
        self._backend = make_backend(settings.backend, device, cnn, transformer, export, settings.int8, settings.threads)
        self._model = None if isinstance(self._backend, OnnxBackend) else model

    def _describe(self, files: Checkpoint, export: OnnxExport) -> None:
        """What every pass needs to know of the checkpoint, from its record and its export (made or to be made)."""
        self.name = files.name
        self.has_ctc_head = export.has_ctc_head
        self.tokens = files.tokens
        self.blank_id = files.blank_id
        self.delimiter_id = files.delimiter_id
        self.normalize = files.normalize
        self.parameters = export.parameters
        self.layers = files.layers
        self.fingerprint = export.fingerprint
        if files.first_layer_statistics is not None:
            self._check_statistics(files.first_layer_statistics, export.first_layer.channels)
            # the same weights normalised otherwise make other features: enrolled keywords and heads must not mix them
            mixed = hashlib.sha256(self.fingerprint.encode())
            for array in files.first_layer_statistics:
                mixed.update(array.tobytes())
            self.fingerprint = mixed.hexdigest()[:16]
        self.samples_per_frame = math.prod(files.conv_stride)
        self.conv = tuple(zip(files.conv_kernel, files.conv_stride))
        """The CNN's (kernel, stride) layers."""
        self.attends_to_states = export.attends_to_states
        """Whether ``encode`` runs the transformer only after reused frames that carry ``states``."""
        self._first_layer = (export.first_layer if files.first_layer_statistics is None
                             else replace(export.first_layer, fixed=files.first_layer_statistics))
        self._no_context = (np.zeros((0, files.cnn_channels), np.float32),
                            np.zeros((files.layers, 0, files.hidden_size), np.float32))

    def _check_statistics(self, statistics: tuple[np.ndarray, np.ndarray], channels: int) -> None:
        if any(a.shape != (channels,) or not np.all(np.isfinite(a)) for a in statistics) or np.any(statistics[1] < 0):
            raise ModelLoadError(f"model {self.name!r}: its first-layer statistics are not {channels} finite values each "
                                 "(mean, var >= 0); remove kwstream_first_layer_statistics from its config.json")

    @property
    def transformer_blocks(self):
        """The checkpoint's transformer blocks (float PyTorch modules), for a head that trains copies
        of the top ones; loaded with PyTorch where the ONNX backend runs the model."""
        model = self._model if self._model is not None else load_checkpoint(self.name).model
        return model.base_model.encoder.layers

    def frames_for(self, samples: int) -> int:
        """How many frames the CNN makes of ``samples`` samples (``cnn_frames``)."""
        return cnn_frames(samples, self.conv)

    def reusable_frames(self, samples: int, available: int) -> int:
        """How many of ``available`` earlier frames a pass over ``samples`` samples takes instead of
        computing them (``reusable_frames``)."""
        return reusable_frames(self.frames_for(samples), available)

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
               context_frames: int = 0, keep_states: bool = False, running: RunningStatistics | None = None) -> EncodedFrames:
        """One pass over ``audio``: log-probabilities (if the model has a CTC head), the hidden
        states of ``layers`` and the CNN's output, one row per ``samples_per_frame`` samples.

        ``reuse``: an earlier pass's frames (with ``cnn``) for the audio's first frames; the CNN then
        runs only on the audio after them (with statistics of all of ``audio``). ``context_frames``:
        how many of them (from the first, with ``states``) lend their states too; the transformer
        then runs only on the frames after them, attending to those states, and returns them as
        given. ``keep_states``: return ``states``. ``running``: a stream's statistics, which this
        pass's first-layer statistics join and which it then uses (not with fixed ones).
        """
        x = np.ascontiguousarray(audio, dtype=np.float32)
        if self.normalize:
            x = ((x - x.mean()) / np.sqrt(x.var(ddof=1) + VARIANCE_FLOOR)).astype(np.float32)
        mean, var = self._first_layer.of(x)
        known = 0 if reuse is None else self.reusable_frames(len(x), len(reuse))
        new = x[known * self.samples_per_frame:]
        if running is not None and self._first_layer.fixed is None:
            mean, var = running.blend(mean, var, len(new) / SAMPLE_RATE)
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


def torch_stages(checkpoint: Checkpoint, directory: Path, key: str):
    """The checkpoint's model as its two PyTorch stages (``stages``: the CNN, and the transformer,
    with states as context where its layers allow), and the ``OnnxExport`` they make in ``directory``."""
    from kwstream.model.stages import context_stage, split_model

    model = checkpoint.model
    fingerprint = digest(model.base_model)
    parameters = sum(p.numel() for p in model.parameters())
    cnn, transformer = split_model(model, checkpoint.has_ctc_head)
    context = context_stage(transformer)
    if context is None:
        log.info("%s: chunks recompute the transformer's left context (its layers are not wav2vec2's)", checkpoint.name)
    export = OnnxExport(directory, key, fingerprint, parameters, checkpoint.has_ctc_head, context is not None,
                        cnn.statistics())
    return cnn, context or transformer, export
