"""A wav2vec2 checkpoint loaded with ``transformers``: the model, its spelling (tokens, blank,
word delimiter), its input normalisation, and the fingerprint that ties enrolled keywords and
classifier heads to it."""

from __future__ import annotations

from kwstream.errors import ModelLoadError
from kwstream.model.checkpoint_files import Checkpoint, checkpoint_directory, fixed_statistics
from kwstream.model.resolve import quiet_transformers, resolve_model


def load_checkpoint(spec: str, resolved: tuple[str, bool] | None = None) -> Checkpoint:
    """Resolve ``spec`` (see ``resolve.resolve_model``; ``resolved`` when that is done) and load it, with one-line errors."""
    from transformers import AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer

    quiet_transformers()
    source, local_only = resolved or resolve_model(spec)
    try:
        model, info = AutoModelForCTC.from_pretrained(source, local_files_only=local_only, output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load model {spec!r}: {first_line}") from None
    has_ctc_head = not any(key.startswith("lm_head") for key in info.get("missing_keys", []))
    tokens: list[str] = []
    blank_id, delimiter_id = 0, None
    if has_ctc_head:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        except (OSError, ValueError, KeyError, TypeError):
            raise ModelLoadError(
                f"cannot load model {spec!r}: it has a CTC head but no usable tokenizer "
                "(vocab.json and tokenizer_config.json), which typed keywords need to be spelled"
            ) from None
        vocab = tokenizer.get_vocab()
        tokens = [""] * model.config.vocab_size
        for token, index in vocab.items():
            if index < len(tokens):
                tokens[index] = token
        pad = model.config.pad_token_id if model.config.pad_token_id is not None else tokenizer.pad_token_id
        blank_id = int(pad)
        delimiter_id = vocab.get(getattr(tokenizer, "word_delimiter_token", None) or "|")
    try:
        extractor = AutoFeatureExtractor.from_pretrained(source, local_files_only=local_only)
        normalize = bool(getattr(extractor, "do_normalize", True))
    except (OSError, ValueError):
        normalize = True
    config = model.config
    return Checkpoint(source, checkpoint_directory(source, True), tokens, blank_id, delimiter_id, normalize,
                      int(config.num_hidden_layers), int(config.hidden_size), tuple(config.conv_kernel),
                      tuple(config.conv_stride), int(config.conv_dim[-1]), model.eval(), has_ctc_head,
                      fixed_statistics(config.to_dict()))


def torch_device(name: str):
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


def digest(module) -> str:
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
