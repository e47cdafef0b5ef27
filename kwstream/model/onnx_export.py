"""The model's two stages exported to ONNX, once per checkpoint, with what running them needs
besides: a manifest (``export.json``) of the encoder's fingerprint, parameter count, kind of graphs
and the CNN's first-layer weights, so that the ONNX path loads neither torch nor the PyTorch weights.

An export is a directory: ``cnn.onnx``, ``transformer.onnx`` and ``export.json``, named by the key of
the checkpoint's weight files (``checkpoint_files.weights_key``). It is looked for beside the
checkpoint (``onnx/``: the bundled model ships its own, made by ``python -m training.export_onnx``)
and then in the cache (``~/.cache/kwstream/onnx/<key>-v<version>``), where exports of other
checkpoints are made on first use. The exporter is torch.export-based (the older tracing exporter
mis-exports wav2vec2's weight-normalised positional convolution), with dynamic lengths. The
transformer graph gives the CTC log-probabilities (when the model has a CTC head) and every layer's
hidden states as outputs; a run fetches only the outputs asked for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kwstream.audio.io import SAMPLE_RATE
from kwstream.errors import ModelLoadError
from kwstream.model.cnn_stats import FirstLayerStats

log = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("KWSTREAM_CACHE", Path.home() / ".cache" / "kwstream")) / "onnx"
GRAPHS_VERSION = 4
"""Part of every export's manifest and cached name; raised whenever what the stages compute or the
export's layout changes, so that no export made by older code is run."""
BESIDE_CHECKPOINT = "onnx"
"""The folder in a checkpoint directory that holds its own export (the bundled model's)."""
MANIFEST = "export.json"
CNN_GRAPH, TRANSFORMER_GRAPH = "cnn.onnx", "transformer.onnx"
MAX_EXPORT_SAMPLES = SAMPLE_RATE * 60
"""Longest audio the exported graphs accept (a minute; chunks are about a second)."""
MIN_EXPORT_SAMPLES = 400
"""Shortest: one frame of the wav2vec2 CNN's receptive field."""
LOG_PROBS = "log_probs"
MIN_HALVED = 1024
"""Weights smaller than this stay float32 in an export: a Cast node would cost more than it saves."""


def output_names(has_ctc_head: bool, layers) -> list[str]:
    """The transformer graph's outputs for the log-probabilities (with a CTC head) and ``layers``."""
    return ([LOG_PROBS] if has_ctc_head else []) + [f"hidden_{layer}" for layer in layers]


@dataclass(frozen=True)
class OnnxExport:
    """One checkpoint's exported stages and the facts about it that loading would otherwise take from PyTorch."""

    directory: Path
    weights_key: str
    """``checkpoint_files.weights_key`` of the checkpoint it was exported from."""
    fingerprint: str
    """``checkpoint.digest`` of the encoder's weights (``Encoder.fingerprint``)."""
    parameters: int
    has_ctc_head: bool
    attends_to_states: bool
    """Whether the transformer graph is a ``ContextTransformerStage`` (inputs left_cnn, cnn, context)."""
    first_layer: FirstLayerStats

    @property
    def cnn_graph(self) -> Path:
        return self.directory / CNN_GRAPH

    @property
    def transformer_graph(self) -> Path:
        return self.directory / TRANSFORMER_GRAPH

    @staticmethod
    def load(directory: Path) -> OnnxExport | None:
        """The export in ``directory``, or None where there is none of this version of the graphs."""
        try:
            data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.pop("graphs_version", None) != GRAPHS_VERSION:
            return None
        first_layer = FirstLayerStats.from_json(data.pop("first_layer"))
        return OnnxExport(directory=directory, first_layer=first_layer, **data)

    def manifest(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k not in ("directory", "first_layer")}
        return json.dumps({"graphs_version": GRAPHS_VERSION, **data, "first_layer": self.first_layer.to_json()})


def cached_export_dir(weights_key: str) -> Path:
    return CACHE_DIR / f"{weights_key}-v{GRAPHS_VERSION}"


def find_export(checkpoint_dir: Path, weights_key: str) -> OnnxExport | None:
    """The export of these weights beside the checkpoint or in the cache, if one has been made."""
    for directory in (checkpoint_dir / BESIDE_CHECKPOINT, cached_export_dir(weights_key)):
        export = OnnxExport.load(directory)
        if export is not None and export.weights_key == weights_key:
            return export
    return None


def export_stages(cnn, transformer, export: OnnxExport) -> OnnxExport:
    """Export the stages (``stages.CnnStage``; a ``ContextTransformerStage`` or a
    ``TransformerStage``) into ``export.directory``, replacing what was there in one step, so that
    a found export is always whole. Into the cache, it first removes exports of older graphs."""
    import torch

    if export.directory.parent == CACHE_DIR:
        remove_stale_exports()
    log.warning("exporting the model to ONNX once (into %s)", export.directory)
    normalised, channels = cnn.layers[0].conv.out_channels, cnn.layers[-1].conv.out_channels
    config = transformer.model.config
    samples = torch.export.Dim("samples", min=MIN_EXPORT_SAMPLES, max=MAX_EXPORT_SAMPLES)
    stride = math.prod(layer.conv.stride[0] for layer in cnn.layers)
    frames = torch.export.Dim("frames", min=2, max=MAX_EXPORT_SAMPLES // stride)
    outputs = output_names(export.has_ctc_head, range(config.num_hidden_layers + 1))
    export.directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=export.directory.parent) as tmp:
        staged = Path(tmp) / "export"
        staged.mkdir()
        _export(cnn, (torch.zeros(1, SAMPLE_RATE), torch.zeros(normalised), torch.ones(normalised)),
                ["audio", "mean", "var"], ["cnn"], {"audio": {1: samples}, "mean": None, "var": None}, staged / CNN_GRAPH)
        if export.attends_to_states:
            known = torch.export.Dim("known", min=0, max=MAX_EXPORT_SAMPLES // stride)
            example = (torch.zeros(1, 25, channels), torch.zeros(1, 24, channels),
                       torch.zeros(config.num_hidden_layers, 1, 25, config.hidden_size))
            _export(transformer, example, ["left_cnn", "cnn", "context"], outputs,
                    {"left_cnn": {1: known}, "cnn": {1: frames}, "context": {2: known}}, staged / TRANSFORMER_GRAPH)
        else:
            _export(transformer, (torch.zeros(1, 49, channels),), ["cnn"], outputs, {"frames": {1: frames}},
                    staged / TRANSFORMER_GRAPH)
        (staged / MANIFEST).write_text(export.manifest(), encoding="utf-8")
        shutil.rmtree(export.directory, ignore_errors=True)
        staged.replace(export.directory)
    return export


def remove_stale_exports() -> None:
    """Delete the cache's exports made for other versions of the graphs (files or folders named ``*-v<N>*``)."""
    if not CACHE_DIR.is_dir():
        return
    for path in CACHE_DIR.iterdir():
        version = re.search(r"-v(\d+)", path.name)
        if version and int(version.group(1)) != GRAPHS_VERSION:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _export(module, example: tuple, input_names: list[str], output_names: list[str], dynamic_shapes: dict, path: Path) -> None:
    import torch

    try:
        with warnings.catch_warnings(), torch.inference_mode(), quiet("torch.onnx"):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(path), input_names=input_names, output_names=output_names,
                              dynamic_shapes=dynamic_shapes, dynamo=True, verbose=False, report=False,
                              external_data=False)
        _store_exact_halves(path)
    except Exception as exc:  # the exporter's failures are many and internal: one line for the user
        raise ModelLoadError(f"cannot export this model to ONNX ({type(exc).__name__}); use --backend torch") from None


def _store_exact_halves(path: Path) -> None:
    """Store each float32 weight that float16 holds exactly (a checkpoint saved in float16, as the
    bundled model is) as float16 behind a Cast to float32: half the file, the same numbers, since
    ONNX Runtime folds the casts once when it loads the graph and computes in float32 as before."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    casts = []
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        if np.prod(tensor.dims) < MIN_HALVED:
            continue
        weight = numpy_helper.to_array(tensor)
        half = weight.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), weight):
            continue
        name = tensor.name
        tensor.CopyFrom(numpy_helper.from_array(half, f"{name}.float16"))
        casts.append(onnx.helper.make_node("Cast", [tensor.name], [name], to=onnx.TensorProto.FLOAT))
    if casts:
        nodes = casts + list(model.graph.node)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.save(model, str(path))


@contextlib.contextmanager
def quiet(logger_name: str):
    """Only errors from this logger while the block runs."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
