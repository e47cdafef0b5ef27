"""The encoder's model run by ONNX Runtime from its export (``onnx_export``): the same numbers as
PyTorch, faster on a CPU, and without importing torch.

``int8`` quantises the transformer graph's matrix products dynamically (ONNX Runtime's own
quantiser, into the cache, since a bundled export may lie in a read-only install), as ``--int8``
does for PyTorch's linear layers. Weights are stored unsigned, like the inputs: x86 CPUs without
VNNI multiply unsigned by signed 8 bits in pairs that saturate at 16 bits (onnxruntime issues 5849,
14642), which on this project's machine moved one linear layer's outputs by 1.8 where exact int8
arithmetic moves them by 0.06, and cost version 10 a fifth of its bench detections (78 -> 63 of
150); unsigned by unsigned is exact on every CPU, at a speed within this machine's noise. The feature
projection's product stays in float: it is the one int8 hurts most (its input, the CNN's output, has
the widest range) and it runs on the new frames only; version 10 with it in float finds 84 of the
bench's 150 words (all in int8: 72, float32: 78), and theo's digits 0.696 (0.670, 0.704). The CNN stays in fp32: written as matrix products, int8 made a
wav2vec2-base CNN 2.4x faster, but it cost the bundled model recall on the development streams
(0.73 -> 0.70 at 20 false alarms per hour).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from kwstream.errors import ModelLoadError
from kwstream.model.onnx_export import OnnxExport, cached_export_dir, output_names, quiet
from kwstream.processes import physical_cores


class OnnxBackend:
    """A wav2vec2 model's two exported stages, each run by an ONNX Runtime session (a ``StageBackend``)."""

    def __init__(self, export: OnnxExport, int8: bool, threads: int | None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ModelLoadError("the onnx backend needs onnxruntime: pip install onnxruntime onnx onnxscript") from None
        self.has_ctc_head = export.has_ctc_head
        transformer = _quantized(onnxruntime, export) if int8 else export.transformer_graph
        self._cnn = _session(onnxruntime, export.cnn_graph, threads)
        self._transformer = _session(onnxruntime, transformer, threads)
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
    # given a count, ONNX Runtime leaves its threads on the cores the process may use; its own choice (0) pins one to every core
    options.intra_op_num_threads = threads or physical_cores() or 0
    options.inter_op_num_threads = 1
    # The CNN's and the transformer's sessions run one after the other, each with its own pool:
    # threads left spinning by one take the cores from the other (measured: 1.4x slower with two threads).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
        raise ModelLoadError(f"the ONNX export {path} cannot be loaded ({type(exc).__name__}); delete it") from None


INT8_GRAPH = "transformer-int8-v3.onnx"
STALE_INT8_GRAPHS = ("transformer-int8.onnx", "transformer-uint8.onnx")
"""Earlier int8 graphs: signed weights (before 2026-12-06), then the feature projection in int8 too."""


def feature_projection_products(graph: Path) -> list[str]:
    """The names of the feature projection's MatMul nodes in an exported transformer graph (the exporter
    records each node's module; folding keeps the names), none where the graph does not say."""
    import onnx

    def in_projection(node) -> bool:
        return any(p.key == "pkg.torch.onnx.name_scopes" and "feature_projection" in p.value for p in node.metadata_props)

    return [node.name for node in onnx.load(str(graph)).graph.node if node.op_type == "MatMul" and in_projection(node)]


def _quantized(onnxruntime, export: OnnxExport) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = cached_export_dir(export.weights_key) / INT8_GRAPH
    if out.is_file():
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            folded, staged = Path(tmp) / "folded.onnx", Path(tmp) / out.name
            # The quantiser finds weights only as initializers: fold the float16 ones' casts first.
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(folded)
            onnxruntime.InferenceSession(str(export.transformer_graph), options, providers=["CPUExecutionProvider"])
            with quiet(""):  # the quantiser's advice on pre-processing, through the root logger
                quantize_dynamic(str(folded), str(staged), weight_type=QuantType.QUInt8, op_types_to_quantize=["MatMul"],
                                 nodes_to_exclude=feature_projection_products(export.transformer_graph))
            staged.replace(out)
        for stale in STALE_INT8_GRAPHS:
            (out.parent / stale).unlink(missing_ok=True)
    except Exception as exc:  # ONNX Runtime's and the quantiser's errors are their own types: one line
        raise ModelLoadError(f"cannot quantise {export.transformer_graph} to int8 ({type(exc).__name__}); drop --int8") from None
    return out
