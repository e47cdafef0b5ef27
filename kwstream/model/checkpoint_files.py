"""The one checkpoint record, and what a checkpoint directory's own files say, read without torch
or transformers: its spelling (vocab.json, tokenizer_config.json), its input normalisation
(preprocessor or processor config), its shape (config.json), and a key of its weights that names
its ONNX export.

The ONNX path needs no more than this and the export itself, so listening never imports torch.
``checkpoint.load_checkpoint`` fills the same record through ``from_pretrained`` for PyTorch, with
the model itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHT_SUFFIXES = (".safetensors", ".bin")
FIXED_STATISTICS_KEY = "kwstream_first_layer_statistics"
"""config.json's entry for fixed statistics of the CNN's first GroupNorm (``{"mean": [...], "var": [...]}``,
one per channel): a model trained with them normalises every chunk alike, however short or quiet."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint says of itself, before the model is split into stages."""

    name: str
    """The path or hub id it was loaded from."""
    directory: Path | None
    """None for a hub checkpoint that is not in the cache's usual layout."""
    tokens: list[str]
    """Each token id's text (empty without a CTC head)."""
    blank_id: int
    delimiter_id: int | None
    normalize: bool
    """Whether the model expects each input scaled to zero mean and unit variance."""
    layers: int
    hidden_size: int
    conv_kernel: tuple[int, ...]
    conv_stride: tuple[int, ...]
    cnn_channels: int
    """The CNN's output channels, the transformer stage's input."""
    model: object = None
    """The ``transformers`` model (``AutoModelForCTC``) in eval mode, where PyTorch loaded it; None
    where only the files were read."""
    has_ctc_head: bool | None = None
    """False for a pretrained-only checkpoint, whose CTC head is random: its features are good, its
    letters noise; None where only the files were read (the ONNX export says)."""
    first_layer_statistics: tuple[np.ndarray, np.ndarray] | None = None
    """Per-channel (mean, var) that the CNN's first GroupNorm uses for every input instead of the
    input's own (``FIXED_STATISTICS_KEY``); None: each input's own, as ``transformers`` computes them."""


def fixed_statistics(config: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The fixed first-layer statistics a checkpoint's config.json gives, if any."""
    entry = config.get(FIXED_STATISTICS_KEY)
    if entry is None:
        return None
    return np.asarray(entry["mean"], np.float32), np.asarray(entry["var"], np.float32)


def checkpoint_directory(source: str, local_only: bool) -> Path | None:
    """The directory of a resolved model (``resolve.resolve_model``): the path itself, or the hub
    cache's snapshot of a hub id; None when it has still to be downloaded."""
    path = Path(source).expanduser()
    if (path / "config.json").is_file():
        return path
    if not local_only:
        return None
    from kwstream.model.resolve import hub_cache_file

    config = hub_cache_file(source, "config.json")
    return None if config is None else config.parent


def read_checkpoint_files(name: str, directory: Path) -> Checkpoint | None:
    """The facts the ONNX path needs, or None when the files do not give them plainly (no
    tokenizer, a per-language vocabulary): ``from_pretrained`` then reads the checkpoint."""
    try:
        config = _json(directory / "config.json")
        vocab = _json(directory / "vocab.json")
        tokenizer = _json(directory / "tokenizer_config.json")
    except (OSError, ValueError):
        return None
    if not all(isinstance(index, int) for index in vocab.values()):
        return None
    vocab |= {added["content"]: int(index) for index, added in tokenizer.get("added_tokens_decoder", {}).items()}
    tokens = [""] * int(config["vocab_size"])
    for token, index in vocab.items():
        if index < len(tokens):
            tokens[index] = token
    pad = config.get("pad_token_id")
    blank_id = int(pad if pad is not None else vocab[_content(tokenizer.get("pad_token", "<pad>"))])
    delimiter = tokenizer.get("word_delimiter_token") or "|"
    return Checkpoint(name, directory, tokens, blank_id, vocab.get(_content(delimiter)), _normalize(directory),
                           int(config["num_hidden_layers"]), int(config["hidden_size"]), tuple(config["conv_kernel"]),
                           tuple(config["conv_stride"]), int(config["conv_dim"][-1]),
                           first_layer_statistics=fixed_statistics(config))


def weights_key(directory: Path) -> str:
    """A digest of the checkpoint's weight files and config.json: the name of its ONNX export."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES or p.name == "config.json"):
        digest.update(path.name.encode())
        part = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                part.update(block)
        digest.update(part.digest())
    return digest.hexdigest()[:16]


def _normalize(directory: Path) -> bool:
    for name, section in (("preprocessor_config.json", None), ("processor_config.json", "feature_extractor")):
        try:
            data = _json(directory / name)
        except (OSError, ValueError):
            continue
        return bool((data.get(section, {}) if section else data).get("do_normalize", True))
    return True


def _content(token) -> str:
    """A special token as tokenizer_config.json writes it: text, or an AddedToken's fields."""
    return token["content"] if isinstance(token, dict) else str(token)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
