"""Package data: the bundled model (``model/``, with ``MODEL_CARD.md``), the homophone table
(``homophones.json``), keyword-free speech for calibrating enrolled keywords (``negatives/``) and the demo and test recordings (``audio/``, with their licence), found
through importlib.resources so that an installed wheel carries them too."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def asset_path(*parts: str) -> Path:
    """Where an asset lies on disk (the package is installed unzipped)."""
    return Path(str(files(__name__).joinpath(*parts)))


MODEL_DIR = asset_path("model")
"""The project's own small offline model, ``auto``'s fallback."""
AUDIO_DIR = asset_path("audio")
HOMOPHONES_FILE = asset_path("homophones.json")
DEMO_AUDIO = AUDIO_DIR / "demo_hey_stop.flac"
NEGATIVE_SPEECH = asset_path("negatives", "speech.ogg")
"""Real keyword-free speech (see negatives/README.md): where enrolled keywords' thresholds come from."""
