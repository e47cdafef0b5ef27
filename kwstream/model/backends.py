"""Who runs the model's two stages (``stages``): one small class per backend behind one protocol.

``TorchBackend`` runs them with PyTorch (any device; ``int8`` quantises the transformer's linear
layers dynamically); ``onnx_backend.OnnxBackend`` runs their exported graphs with ONNX Runtime
(CPU; the same numbers, faster). ``make_backend`` chooses, as ``EncoderSettings.backend`` says,
when the model has been loaded with PyTorch; the Encoder opens a ready export without it.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from kwstream.errors import ModelLoadError

log = logging.getLogger(__name__)


class StageBackend(Protocol):
    """Runs the CNN stage and the transformer stage on numpy arrays."""

    def cnn(self, audio: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """The CNN's (frames, channels) output for one (samples,) array, normalised with ``mean``, ``var``."""
        ...

    def transformer(self, layers: list[int], *inputs: np.ndarray) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
        """Log-probabilities (or None without a CTC head) and the hidden states of ``layers`` for the
        transformer stage's inputs: the (1, frames, channels) CNN output, after the left context's CNN
        output and (layers, 1, frames, hidden) states for a ``ContextTransformerStage``."""
        ...


def quantize_linear_layers(module, device):
    """``module`` with its linear layers quantised to int8, dynamically (CPU only)."""
    import warnings

    import torch

    if device.type != "cpu":
        raise ModelLoadError("int8 quantisation runs on the CPU only; drop --int8 or use --device cpu")
    with warnings.catch_warnings():  # torch points to torchao for new code; this path is still supported
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


class TorchBackend:
    """The stages as PyTorch modules on ``device``."""

    def __init__(self, cnn, transformer, device, int8: bool) -> None:
        self.device = device
        self.has_ctc_head = transformer.has_ctc_head
        self._cnn = cnn.to(device)
        self._transformer = (quantize_linear_layers(transformer, device) if int8 else transformer).to(device)

    def cnn(self, audio: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        return self._run(self._cnn, audio[None], mean, var)[0]

    def transformer(self, layers: list[int], *inputs: np.ndarray) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
        outputs = self._run(self._transformer, *inputs)
        log_probs = outputs[0][0] if self.has_ctc_head else None
        every_layer = outputs[1:] if self.has_ctc_head else outputs
        return log_probs, {layer: every_layer[layer][0] for layer in layers}

    def _run(self, module, *arrays: np.ndarray):
        """``module`` on numpy inputs, on the backend's device; float32 numpy outputs."""
        import torch

        with torch.inference_mode():
            out = module(*(torch.from_numpy(a).to(self.device) for a in arrays))
        return [o.float().cpu().numpy() for o in out] if isinstance(out, tuple) else out.float().cpu().numpy()


def runs_onnx(backend: str, device: str) -> bool:
    """The one choice of runtime: ONNX Runtime when asked for by name (on the CPU only) or under
    ``auto`` on the CPU; PyTorch otherwise."""
    if backend == "onnx" and device != "cpu":
        raise ModelLoadError("the onnx backend runs on the CPU; use --backend torch for other devices")
    return backend == "onnx" or (backend == "auto" and device == "cpu")


def make_backend(name: str, device, cnn, transformer, export, int8: bool, threads: int | None) -> StageBackend:
    """The backend ``name`` (``auto``, ``onnx``, ``torch``) for the stages; under ``auto``, ONNX
    Runtime on the CPU, falling back to PyTorch with a notice when the model cannot be exported.
    ``export``: the ``onnx_export.OnnxExport`` found for the checkpoint, or the one to make of the
    stages (into the cache) where none has been made."""
    if runs_onnx(name, device.type):
        from kwstream.model.onnx_backend import OnnxBackend
        from kwstream.model.onnx_export import OnnxExport, export_stages

        try:
            made = OnnxExport.load(export.directory)
            if made is None or made.weights_key != export.weights_key:
                made = export_stages(cnn, transformer, export)
            return OnnxBackend(made, int8, threads)
        except ModelLoadError as exc:
            if name == "onnx":
                raise
            log.warning("%s; running it with PyTorch instead", exc)
    return TorchBackend(cnn, transformer, device, int8)
