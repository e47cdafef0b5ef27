"""Load a wav2vec2 checkpoint once and turn 16 kHz audio into per-frame log-probabilities and features.

Models come from a local ``save_pretrained`` directory or a Hugging Face hub id. The hub is only
contacted when a model is not cached and a quick connection check succeeds, so an offline machine
gets a clear error at once instead of minutes of retries.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from kwstream.assets import MODEL_DIR
from kwstream.errors import ModelLoadError

log = logging.getLogger(__name__)

AUTO_MODEL = "auto"
DEFAULT_HUB_MODEL = "facebook/wav2vec2-base-960h"
"""The strong public English CTC checkpoint ``auto`` prefers when the hub or cache has it."""
BUNDLED_MODEL_DIR = MODEL_DIR
"""The project's own small offline model, ``auto``'s fallback."""
HUB_PROBE_TIMEOUT_S = 3.0
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


def quiet_transformers() -> None:
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    disable_progress_bars()


def hub_reachable() -> bool:
    """True when the hub endpoint accepts a TCP connection within a few seconds."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _looks_like_path(spec: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else, or anything that exists, is a path."""
    return Path(spec).expanduser().exists() or spec.startswith((".", "/", "~", os.sep)) or spec.count("/") > 1


def resolve_model(spec: str) -> tuple[str, bool]:
    """Map a model spec to ``(path_or_hub_id, local_only)``, choosing for ``auto``."""
    if spec == AUTO_MODEL:
        if _in_hub_cache(DEFAULT_HUB_MODEL):
            return DEFAULT_HUB_MODEL, True
        if hub_reachable():
            return DEFAULT_HUB_MODEL, False
        if (BUNDLED_MODEL_DIR / "config.json").is_file():
            log.warning("%s is not cached and the hub is unreachable: using the bundled model", DEFAULT_HUB_MODEL)
            return str(BUNDLED_MODEL_DIR), True
        raise ModelLoadError(
            f"no model available offline: {DEFAULT_HUB_MODEL} is not cached, the hub is unreachable "
            "and no bundled model is installed; pass a local model directory with --model PATH"
        )
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{spec} is not a model directory (no config.json in save_pretrained layout)")
        return str(path), True
    if _in_hub_cache(spec):
        return spec, True
    if not hub_reachable():
        raise ModelLoadError(
            f"model {spec!r} is not in the local cache and the hub cannot be reached; "
            "download it on a connected machine (save_pretrained) and pass its directory with --model PATH"
        )
    return spec, False


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _torch_device(name: str):
    import torch

    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if name not in available:
        raise ModelLoadError(f"unknown device {name!r}; choose cpu, cuda or mps")
    if not available[name]:
        raise ModelLoadError(f"device {name!r} is not available on this machine; use --device cpu")
    return torch.device(name)


def _quantize_linear_layers(model, device):
    import warnings

    import torch

    if device.type != "cpu":
        raise ModelLoadError("int8 quantisation runs on the CPU only; drop --int8 or use --device cpu")
    with warnings.catch_warnings():  # torch points to torchao for new code; this path is still supported
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


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
        from transformers import AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer

        from kwstream.model.stages import context_stage, split_model

        quiet_transformers()
        self.device = _torch_device(settings.device)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        source, local_only = resolve_model(settings.model)
        self.name = source
        try:
            model, info = AutoModelForCTC.from_pretrained(source, local_files_only=local_only, output_loading_info=True)
        except (OSError, ValueError, KeyError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"cannot load model {settings.model!r}: {first_line}") from None
        # A pretrained-only checkpoint loads with a random CTC head: its features are good, its letters are noise.
        self.has_ctc_head = not any(key.startswith("lm_head") for key in info.get("missing_keys", []))
        self.tokens: list[str] = []
        self.blank_id = 0
        self.delimiter_id: int | None = None
        if self.has_ctc_head:
            try:
                tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            except (OSError, ValueError, KeyError, TypeError):
                raise ModelLoadError(
                    f"cannot load model {settings.model!r}: it has a CTC head but no usable tokenizer "
                    "(vocab.json and tokenizer_config.json), which typed keywords need to be spelled"
                ) from None
            vocab = tokenizer.get_vocab()
            self.tokens = [""] * model.config.vocab_size
            for token, index in vocab.items():
                if index < len(self.tokens):
                    self.tokens[index] = token
            pad = model.config.pad_token_id if model.config.pad_token_id is not None else tokenizer.pad_token_id
            self.blank_id = int(pad)
            self.delimiter_id = vocab.get(getattr(tokenizer, "word_delimiter_token", None) or "|")
        try:
            extractor = AutoFeatureExtractor.from_pretrained(source, local_files_only=local_only)
            self.normalize = bool(getattr(extractor, "do_normalize", True))
        except (OSError, ValueError):
            self.normalize = True
        self.parameters = sum(p.numel() for p in model.parameters())
        self.layers = int(model.config.num_hidden_layers)
        self.fingerprint = _digest(model.base_model)
        lm_head_digest = _digest(model.lm_head) if self.has_ctc_head else ""  # a random head: not part of any key
        self.samples_per_frame = math.prod(model.config.conv_stride)
        self._conv = list(zip(model.config.conv_kernel, model.config.conv_stride))
        self._cnn, transformer = split_model(model.eval(), self.has_ctc_head)
        context = context_stage(transformer)
        self.attends_to_states = context is not None
        """Whether ``encode`` runs the transformer only after reused frames that carry ``states``."""
        if context is None:
            log.info("%s: chunks recompute the transformer's left context (its layers are not wav2vec2's)", source)
        else:
            transformer = context
        self._no_context = (np.zeros((0, model.config.conv_dim[-1]), np.float32),
                            np.zeros((self.layers, 0, model.config.hidden_size), np.float32))
        self._onnx = None
        if settings.backend == "onnx" or (settings.backend == "auto" and self.device.type == "cpu"):
            self._onnx = _onnx_model(self._cnn, transformer, self.fingerprint + lm_head_digest, self, settings)
        if self._onnx is None and settings.int8:
            transformer = _quantize_linear_layers(transformer, self.device)
        self._cnn = self._cnn.to(self.device)
        self._transformer = transformer.to(self.device)

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
        cnn = self._onnx.cnn(new, mean, var) if self._onnx is not None else self._run_torch(self._cnn, new[None], mean, var)[0]
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
        if self._onnx is not None:
            return self._onnx.transformer(hidden, *inputs)
        outputs = self._run_torch(self._transformer, *inputs)
        log_probs = outputs[0][0] if self.has_ctc_head else None
        every_layer = outputs[1:] if self.has_ctc_head else outputs
        return log_probs, {layer: every_layer[layer][0] for layer in hidden}

    def _frames(self, outputs, layers: tuple[int, ...], cnn: np.ndarray, keep_states: bool) -> EncodedFrames:
        log_probs, hidden = outputs
        states = np.stack([hidden[layer] for layer in range(self.layers)]) if keep_states else None
        return EncodedFrames(log_probs, {layer: hidden[layer] for layer in layers}, cnn, states)

    def _run_torch(self, module, *arrays: np.ndarray):
        """``module`` on numpy inputs, on the encoder's device; float32 numpy outputs."""
        import torch

        with torch.inference_mode():
            out = module(*(torch.from_numpy(a).to(self.device) for a in arrays))
        return [o.float().cpu().numpy() for o in out] if isinstance(out, tuple) else out.float().cpu().numpy()

    def log_probs(self, audio: np.ndarray) -> np.ndarray:
        """Per-frame CTC log-probabilities, shape (frames, vocab)."""
        self.require_ctc_head()
        return self.encode(audio).log_probs


def _onnx_model(cnn, transformer, key: str, encoder: Encoder, settings: EncoderSettings):
    """The ONNX Runtime runner of the stages; under ``auto``, None (PyTorch runs them) when it cannot be had."""
    from kwstream.model.onnx_backend import OnnxModel

    if encoder.device.type != "cpu":
        raise ModelLoadError("the onnx backend runs on the CPU; use --backend torch for other devices")
    try:
        return OnnxModel(cnn, transformer, key, settings.int8, settings.threads)
    except ModelLoadError as exc:
        if settings.backend == "onnx":
            raise
        log.warning("%s; running it with PyTorch instead", exc)
        return None


def _digest(module) -> str:
    """A short id of a module's weights: every tensor's name, shape and a sample of its values.
    Of the encoder (``base_model``) it is the fingerprint that ties enrolled keywords and classifier
    heads to a checkpoint; with the CTC head's, the key of the model's ONNX export."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
