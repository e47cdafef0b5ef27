"""Choose the model, device, thresholds and windowing explicitly.

    python examples/choose_model.py facebook/wav2vec2-base-960h talk.wav
    python examples/choose_model.py ./my-local-checkpoint talk.wav

The model is a hub id or a directory saved with `save_pretrained`; any wav2vec2 CTC checkpoint.
"""

import sys
from dataclasses import replace

from kwstream import (AudioFile, DetectorSettings, EncoderSettings, Keyword, KeywordSettings, KwstreamError, Spotter,
                      SpotterSettings, VadSettings)

if len(sys.argv) != 3:
    sys.exit(f"usage: python {sys.argv[0]} MODEL RECORDING")
model, path = sys.argv[1:]
settings = SpotterSettings(
    encoder=EncoderSettings(model=model, device="cpu", threads=2),
    vad=VadSettings(aggressiveness=3),
    detector=DetectorSettings(refractory_s=0.5),
    keywords=KeywordSettings(threshold=0.6),
)
# Scores move with the windows: with the bundled model (version 12) the demo's "hey" fires at 0.55 with these
# 1.5 s every 250 ms, at 0.68 with 2 s every 200 ms. Choose them, and the thresholds, for your checkpoint.
settings = replace(settings, window_s=1.5, hop_s=0.25)
keywords = [Keyword("hey", threshold=0.5), Keyword("stop")]
try:
    spotter = Spotter(keywords, on_detect=print, source=AudioFile(path), settings=settings)
except KwstreamError as error:  # an unknown or unreachable model, a missing or unreadable recording
    sys.exit(f"choose_model: {error}")
with spotter:
    spotter.wait()
