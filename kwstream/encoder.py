"""Load a wav2vec2 CTC checkpoint once and turn 16 kHz audio into per-frame log-probabilities.

Models come from a local ``save_pretrained`` directory or a Hugging Face hub id. The hub is only
contacted when a model is not cached and a quick connection check succeeds, so an offline machine
gets a clear error at once instead of minutes of retries.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from kwstream.calibration import load_calibration
from kwstream.errors import ModelLoadError

log = logging.getLogger(__name__)

AUTO_MODEL = "auto"
DEFAULT_HUB_MODEL = "facebook/wav2vec2-base-960h"
"""The strong public English CTC checkpoint ``auto`` prefers when the hub or cache has it."""
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "model"
"""The project's own small offline model, ``auto``'s fallback."""
HUB_PROBE_TIMEOUT_S = 3.0


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


class CtcEncoder:
    """A wav2vec2 CTC model: 16 kHz float32 audio in, (frames, vocab) log-probabilities out."""

    def __init__(self, settings: EncoderSettings = EncoderSettings()) -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer

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
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        except (OSError, ValueError, KeyError, TypeError):
            raise ModelLoadError(
                f"cannot load model {settings.model!r}: it has no usable tokenizer (vocab.json and tokenizer_config.json), "
                "which typed keywords need to be spelled"
            ) from None
        if any(key.startswith("lm_head") for key in info.get("missing_keys", [])):
            raise ModelLoadError(
                f"model {settings.model!r} has no trained CTC head (a pretrained-only checkpoint?); "
                "typed keywords need a CTC fine-tuned model"
            )
        try:
            extractor = AutoFeatureExtractor.from_pretrained(source, local_files_only=local_only)
            self.normalize = bool(getattr(extractor, "do_normalize", True))
        except (OSError, ValueError):
            self.normalize = True
        self.parameters = sum(p.numel() for p in model.parameters())
        model = model.eval()
        if settings.int8:
            model = _quantize_linear_layers(model, self.device)
        self._model = model.to(self.device)
        vocab = tokenizer.get_vocab()
        size = model.config.vocab_size
        self.tokens: list[str] = [""] * size
        for token, index in vocab.items():
            if index < size:
                self.tokens[index] = token
        self.blank_id = int(model.config.pad_token_id if model.config.pad_token_id is not None else tokenizer.pad_token_id)
        delimiter = getattr(tokenizer, "word_delimiter_token", None) or "|"
        self.delimiter_id = vocab.get(delimiter)
        self.calibration = load_calibration(source) if Path(source).is_dir() else None
        self.samples_per_frame = math.prod(model.config.conv_stride)

    def log_probs(self, audio: np.ndarray) -> np.ndarray:
        """Per-frame log-probabilities, shape (frames, vocab), one frame per ``samples_per_frame``."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        if self.normalize:
            x = (x - x.mean()) / torch.sqrt(x.var() + 1e-7)
        with torch.inference_mode():
            logits = self._model(x[None].to(self.device)).logits[0]
            return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
