"""Sample conversions, written once: mixing to mono, and signed 16-bit PCM to and from float32.

16-bit PCM has one scale both ways (``PCM16_SCALE``): a sample ``k`` is the float ``k / 32768``, so
16-bit audio survives float and back exactly; floats are clipped to what 16 bits hold, [-1, 1 - 2**-15].
"""

from __future__ import annotations

import numpy as np

PCM16_SCALE = 32768.0
"""Full scale of signed 16-bit PCM."""


def to_mono(block: np.ndarray) -> np.ndarray:
    """A (frames, channels) block as mono float32: its one channel as it is (a view), or the
    channels' mean."""
    return block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)


def pcm16_to_float(data: bytes | np.ndarray) -> np.ndarray:
    """Signed 16-bit little-endian PCM (bytes, or the int16 samples) as float32 in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / PCM16_SCALE


def float_to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio as signed 16-bit little-endian samples (``.tobytes()`` gives raw PCM), clipped."""
    return (np.clip(audio, -1.0, 1.0 - 1.0 / PCM16_SCALE) * PCM16_SCALE).astype("<i2")
