"""The encoder's model run by ONNX Runtime: the same numbers as PyTorch, faster on a CPU.

The model's two stages (``stages``: the CNN, and the transformer with the CTC head, which
takes earlier frames' states as context where the model allows) are exported once per checkpoint
and version of these graphs with the torch.export-based exporter (the older tracing exporter
mis-exports wav2vec2's weight-normalised positional convolution), with dynamic lengths. The
transformer graph gives the CTC log-probabilities (when the model has a CTC head) and every
layer's hidden states as outputs; a run fetches only the outputs asked for. Exports are cached
under ``~/.cache/kwstream/onnx`` by a digest of all the weights; ``int8`` quantises the transformer
graph's matrix products dynamically (ONNX Runtime's own quantiser), as ``--int8`` does for
PyTorch's linear layers. The CNN stays in fp32: written as matrix products, int8 made a
wav2vec2-base CNN 2.4x faster, but it cost the bundled model recall on the development streams
(0.73 -> 0.70 at 20 false alarms per hour).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from kwstream.audio.io import SAMPLE_RATE
from kwstream.errors import ModelLoadError

log = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("KWSTREAM_CACHE", Path.home() / ".cache" / "kwstream")) / "onnx"
GRAPHS_VERSION = 2
"""Part of every cached export's name; raised whenever what the stages compute changes, so that no
export made by older code is run."""
MAX_EXPORT_SAMPLES = SAMPLE_RATE * 60
"""Longest audio the exported graphs accept (a minute; chunks are about a second)."""
MIN_EXPORT_SAMPLES = 400
"""Shortest: one frame of the wav2vec2 CNN's receptive field."""
LOG_PROBS = "log_probs"


def output_names(has_ctc_head: bool, layers) -> list[str]:
    """The graph's outputs for the log-probabilities (when there is a CTC head) and ``layers``."""
    return ([LOG_PROBS] if has_ctc_head else []) + [f"hidden_{layer}" for layer in layers]


class OnnxBackend:
    """A wav2vec2 model's two stages (``stages``), each run by an ONNX Runtime session (a ``StageBackend``)."""

    def __init__(self, cnn, transformer, digest: str, int8: bool, threads: int | None) -> None:
        """``transformer``: a ``ContextTransformerStage``, or a ``TransformerStage`` for a model without one."""
        try:
            import onnxruntime
        except ImportError:
            raise ModelLoadError("the onnx backend needs onnxruntime: pip install onnxruntime onnx onnxscript") from None
        import torch

        from kwstream.model.stages import ContextTransformerStage

        self.has_ctc_head = transformer.has_ctc_head
        takes_context = isinstance(transformer, ContextTransformerStage)
        cnn_path = CACHE_DIR / f"{digest}-v{GRAPHS_VERSION}-cnn.onnx"
        kind = ("-ctc" if self.has_ctc_head else "") + ("-context" if takes_context else "")
        transformer_path = CACHE_DIR / f"{digest}-v{GRAPHS_VERSION}{kind}-transformer.onnx"
        normalised, channels = cnn.layers[0].conv.out_channels, cnn.layers[-1].conv.out_channels
        config = transformer.model.config
        samples = torch.export.Dim("samples", min=MIN_EXPORT_SAMPLES, max=MAX_EXPORT_SAMPLES)
        stride = math.prod(layer.conv.stride[0] for layer in cnn.layers)
        frames = torch.export.Dim("frames", min=2, max=MAX_EXPORT_SAMPLES // stride)
        if not cnn_path.is_file() or not transformer_path.is_file():
            log.warning("exporting the model to ONNX once (cached in %s)", CACHE_DIR)
            _export(cnn, (torch.zeros(1, SAMPLE_RATE), torch.zeros(normalised), torch.ones(normalised)), ["audio", "mean", "var"],
                    ["cnn"], {"audio": {1: samples}, "mean": None, "var": None}, cnn_path)
            outputs = output_names(self.has_ctc_head, range(config.num_hidden_layers + 1))
            if takes_context:
                known = torch.export.Dim("known", min=0, max=MAX_EXPORT_SAMPLES // stride)
                example = (torch.zeros(1, 25, channels), torch.zeros(1, 24, channels),
                           torch.zeros(config.num_hidden_layers, 1, 25, config.hidden_size))
                _export(transformer, example, ["left_cnn", "cnn", "context"], outputs,
                        {"left_cnn": {1: known}, "cnn": {1: frames}, "context": {2: known}}, transformer_path)
            else:
                _export(transformer, (torch.zeros(1, 49, channels),), ["cnn"], outputs, {"frames": {1: frames}}, transformer_path)
        self._cnn = _session(onnxruntime, cnn_path, threads)
        self._transformer = _session(onnxruntime, _quantized(transformer_path) if int8 else transformer_path, threads)
        self._cnn_inputs = [i.name for i in self._cnn.get_inputs()]  # mean and var only for group-norm CNNs
        self._transformer_inputs = [i.name for i in self._transformer.get_inputs()]

    def cnn(self, audio: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """The CNN's (frames, channels) output for one (samples,) array, normalised with ``mean``, ``var``."""
        feeds = {"audio": audio[None], "mean": mean, "var": var}
        return self._cnn.run(None, {name: feeds[name] for name in self._cnn_inputs})[0][0]

    def transformer(self, layers: list[int], *inputs: np.ndarray) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
        """Log-probabilities (or None) and the hidden states of ``layers`` for the transformer
        stage's inputs: the (1, frames, channels) CNN output, after the left context's CNN output
        and (layers, 1, frames, hidden) states for a ``ContextTransformerStage``."""
        names = output_names(self.has_ctc_head, layers)
        outputs = self._transformer.run(names, dict(zip(self._transformer_inputs, inputs))) if names else []
        log_probs = outputs.pop(0)[0] if self.has_ctc_head else None
        return log_probs, {layer: out[0] for layer, out in zip(layers, outputs)}


def _session(onnxruntime, path: Path, threads: int | None):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's choice (all cores)
    options.inter_op_num_threads = 1
    # The CNN's and the transformer's sessions run one after the other, each with its own pool:
    # threads left spinning by one take the cores from the other (measured: 1.4x slower with two threads).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
        raise ModelLoadError(f"the cached ONNX export {path} cannot be loaded ({type(exc).__name__}); delete it") from None


def _export(module, example: tuple, input_names: list[str], output_names: list[str], dynamic_shapes: dict, path: Path) -> None:
    """Export ``module`` to ``path``, staged so that a cache hit is always a whole export."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        try:
            with warnings.catch_warnings(), torch.inference_mode(), _quiet("torch.onnx"):
                warnings.simplefilter("ignore")
                torch.onnx.export(module, example, str(staged), input_names=input_names, output_names=output_names,
                                  dynamic_shapes=dynamic_shapes, dynamo=True, verbose=False, report=False)
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
