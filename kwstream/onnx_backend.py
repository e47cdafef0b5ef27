"""The encoder's model run by ONNX Runtime: the same numbers as PyTorch, faster on a CPU.

The model is exported once per checkpoint with the torch.export-based exporter (the older tracing
exporter mis-exports wav2vec2's weight-normalised positional convolution), with a dynamic audio
length, giving the CTC log-probabilities (when the model has a CTC head) and every layer's hidden
states as outputs; a run fetches only the outputs asked for. Exports are cached under
``~/.cache/kwstream/onnx`` by a digest of all the weights; ``int8`` quantises the graph's matrix
products dynamically (ONNX Runtime's own quantiser), as ``--int8`` does for PyTorch's linear layers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from kwstream.errors import ModelLoadError

log = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("KWSTREAM_CACHE", Path.home() / ".cache" / "kwstream")) / "onnx"
MAX_EXPORT_SAMPLES = 16000 * 60
"""Longest audio the exported graph accepts (a minute; chunks are about a second)."""
LOG_PROBS = "log_probs"


def output_names(has_ctc_head: bool, layers) -> list[str]:
    """The graph's outputs for the log-probabilities (when there is a CTC head) and ``layers``."""
    return ([LOG_PROBS] if has_ctc_head else []) + [f"hidden_{layer}" for layer in layers]


class OnnxModel:
    """A wav2vec2 model (``transformers``, already loaded) run by an ONNX Runtime session."""

    def __init__(self, model, digest: str, has_ctc_head: bool, int8: bool, threads: int | None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ModelLoadError("the onnx backend needs onnxruntime: pip install onnxruntime onnx onnxscript") from None
        self.has_ctc_head = has_ctc_head
        path = CACHE_DIR / f"{digest}{'-ctc' if has_ctc_head else ''}.onnx"
        if not path.is_file():
            log.warning("exporting the model to ONNX once (cached in %s)", CACHE_DIR)
            _export(model, has_ctc_head, path)
        if int8:
            path = _quantized(path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's choice (all cores)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
            raise ModelLoadError(f"the cached ONNX export {path} cannot be loaded ({type(exc).__name__}); delete it") from None

    def run(self, audio: np.ndarray, layers: tuple[int, ...]) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
        """Log-probabilities (or None) and the hidden states of ``layers`` for one (samples,) array."""
        names = output_names(self.has_ctc_head, layers)
        outputs = self._session.run(names, {"audio": audio[None]}) if names else []
        log_probs = outputs.pop(0)[0] if self.has_ctc_head else None
        return log_probs, {layer: out[0] for layer, out in zip(layers, outputs)}


def _export(model, has_ctc_head: bool, path: Path) -> None:
    import torch

    class Outputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, audio):
            out = self.model(audio, output_hidden_states=True)
            hidden = tuple(out.hidden_states)
            return ((torch.log_softmax(out.logits, dim=-1),) if has_ctc_head else ()) + hidden

    names = output_names(has_ctc_head, range(model.config.num_hidden_layers + 1))
    length = torch.export.Dim("samples", min=model.config.conv_kernel[0] * 2, max=MAX_EXPORT_SAMPLES)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        try:
            with warnings.catch_warnings(), torch.inference_mode(), _quiet("torch.onnx"):
                warnings.simplefilter("ignore")
                torch.onnx.export(Outputs().eval(), (torch.zeros(1, 16000),), str(staged), input_names=["audio"],
                                  output_names=names, dynamic_shapes={"audio": {1: length}}, dynamo=True,
                                  verbose=False, report=False)
        except Exception as exc:  # the exporter's failures are many and internal: one line for the user
            raise ModelLoadError(f"cannot export this model to ONNX ({type(exc).__name__}); use --backend torch") from None
        # the weights when the exporter stores them beside the graph, then the graph: a cache hit is whole
        for part in sorted(Path(tmp).iterdir(), key=lambda p: p.name == path.name):
            part.replace(path.parent / part.name)


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Only errors from this logger while the block runs."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _quantized(path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_name(path.stem + "-int8.onnx")
    if not out.is_file():
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            staged = Path(tmp) / out.name
            with _quiet(""):  # the quantiser's advice on pre-processing, through the root logger
                quantize_dynamic(str(path), str(staged), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
            staged.replace(out)
    return out
