"""Which model a spec names: ``auto`` (the public English checkpoint where the hub or cache has it
and PyTorch is installed to load it, the bundled model otherwise), a hub id, or a local directory.

The hub is only contacted when a model is not cached and a quick connection check succeeds, so an
offline machine gets a clear error at once instead of minutes of retries.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from kwstream.assets import MODEL_DIR
from kwstream.errors import ModelLoadError
from kwstream.extras import installed

log = logging.getLogger(__name__)

AUTO_MODEL = "auto"
DEFAULT_HUB_MODEL = "facebook/wav2vec2-base-960h"
"""The strong public English CTC checkpoint ``auto`` prefers when the hub or cache has it."""
BUNDLED_MODEL_DIR = MODEL_DIR
"""The project's own small offline model, ``auto``'s fallback."""
HUB_PROBE_TIMEOUT_S = 3.0
"""Seconds the hub gets to accept a connection before ``auto`` takes the bundled model."""


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
        bundled = (BUNDLED_MODEL_DIR / "config.json").is_file()
        if bundled and not (installed("torch") and installed("transformers")):
            log.warning("the lean install (no PyTorch) runs the bundled model; pip install 'kwstream[torch]' "
                        "for %s", DEFAULT_HUB_MODEL)
            return str(BUNDLED_MODEL_DIR), True
        if _in_hub_cache(DEFAULT_HUB_MODEL):
            return DEFAULT_HUB_MODEL, True
        if hub_reachable():
            return DEFAULT_HUB_MODEL, False
        if bundled:
            log.warning("%s is not cached and the hub is unreachable: using the bundled model", DEFAULT_HUB_MODEL)
            return str(BUNDLED_MODEL_DIR), True
        raise ModelLoadError(
            f"no model available offline: {DEFAULT_HUB_MODEL} is not cached, the hub is unreachable "
            "and no bundled model is installed; pass a local model directory instead (`--model PATH` on the command line)"
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
            "download it on a connected machine (save_pretrained) and pass its directory instead "
            "(`--model PATH` on the command line)"
        )
    return spec, False


def _in_hub_cache(repo_id: str) -> bool:
    return hub_cache_file(repo_id, "config.json") is not None


def hub_cache_file(repo_id: str, filename: str) -> Path | None:
    """A file of the hub cache's snapshot of ``repo_id`` (its ``main``), read from the cache's
    layout (``huggingface_hub.try_to_load_from_cache`` costs 0.15 CPU-s of imports at start-up)."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    try:
        revision = (repo / "refs" / "main").read_text().strip()
    except OSError:
        return None
    path = repo / "snapshots" / revision / filename
    return path if path.is_file() else None
