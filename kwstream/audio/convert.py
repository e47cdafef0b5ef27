"""Sample conversions, written once: mixing to mono, signed 16-bit PCM to and from float32 (and
32-bit PCM to float32), a streaming resampler, and the framer that cuts chunks of any size into
whole blocks.

16-bit PCM has one scale both ways (``PCM16_SCALE``): a sample ``k`` is the float ``k / 32768``, so
16-bit audio survives float and back exactly; floats are clipped to what 16 bits hold, [-1, 1 - 2**-15].
"""

from __future__ import annotations

import logging

import numpy as np
import soxr

log = logging.getLogger(__name__)

PCM16_SCALE = 32768.0
"""Full scale of signed 16-bit PCM."""


def to_mono(block: np.ndarray) -> np.ndarray:
    """A (frames, channels) block as mono float32: its one channel as it is (a view), or the
    channels' mean."""
    return block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)


def full_scale(block: np.ndarray) -> np.ndarray:
    """Float samples as the pipeline may hear them: NaN and infinities as silence (as ``KeywordPipeline.push``
    hears them) and the rest clipped to full scale, [-1, 1], as a 16-bit copy or a sound card would: a float
    recording may hold 1e30, which would read as +600 dBFS and drown the normalisation of the audio around it."""
    return np.clip(np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)


class NonFiniteCount:
    """One stream's NaN and infinite samples, which are heard as silence (``full_scale``): counted, and the first told
    once, since a scan's or a server's pipeline hears many streams and a spoilt float recording may hold millions."""

    def __init__(self, stream: str, rate: int) -> None:
        """``stream`` names it in the warning (a file's name, "the stream"); ``rate`` (Hz) times its samples."""
        self.stream = stream
        self.rate = rate
        self.samples = 0
        """NaN or infinite samples so far, in every channel."""
        self._frames = 0

    def count(self, block: np.ndarray) -> int:
        """The NaN and infinite samples of ``block``, the stream's next frames (mono, or (frames, channels)), added
        to ``samples``; the stream's first is logged with its time."""
        finite = np.isfinite(block)
        found = finite.size - int(np.count_nonzero(finite))
        if found and not self.samples:
            frame = int(np.argmin(finite if finite.ndim == 1 else finite.all(axis=1)))
            log.warning("NaN or infinite samples at %.2f s of %s: heard as silence",
                        (self._frames + frame) / self.rate, self.stream)
        self.samples += found
        self._frames += len(block)
        return found


def pcm16_to_float(data: bytes | np.ndarray) -> np.ndarray:
    """Signed 16-bit little-endian PCM (bytes, or the int16 samples) as float32 in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / PCM16_SCALE


def pcm32_to_float(data: bytes) -> np.ndarray:
    """Signed 32-bit little-endian PCM as float32 in [-1, 1)."""
    return np.frombuffer(data, dtype="<i4").astype(np.float32) / 2147483648.0


def float_to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio as signed 16-bit little-endian samples (``.tobytes()`` gives raw PCM), clipped."""
    return (np.clip(audio, -1.0, 1.0 - 1.0 / PCM16_SCALE) * PCM16_SCALE).astype("<i2")


class StreamResampler:
    """One stream's mono float32 from ``rate`` to ``target_rate``, chunk by chunk: soxr keeps its
    filter's state between chunks, so the chunking does not change the result; at the target
    rate already, the chunks go through untouched."""

    def __init__(self, rate: int, target_rate: int) -> None:
        self._soxr = soxr.ResampleStream(rate, target_rate, 1, dtype="float32") if rate != target_rate else None

    def push(self, mono: np.ndarray) -> np.ndarray:
        """The next chunk, resampled (the filter may hold a few samples back until the next one)."""
        return mono if self._soxr is None else self._soxr.resample_chunk(mono)

    def finish(self) -> np.ndarray:
        """The samples the filter still holds at the end of the stream."""
        empty = np.zeros(0, np.float32)
        return empty if self._soxr is None else self._soxr.resample_chunk(empty, last=True)


class BlockFramer:
    """Cuts a stream that arrives in chunks of any size into whole blocks of ``block_samples``,
    keeping the tail for the next chunk, so what is measured per block does not depend on the chunks."""

    def __init__(self, block_samples: int) -> None:
        self.block_samples = block_samples
        self._pending = np.zeros(0, np.float32)
        self._position = 0  # absolute index of the first pending sample

    @property
    def received(self) -> int:
        """Samples pushed so far: the whole blocks given out and the pending tail."""
        return self._position + len(self._pending)

    def push(self, samples: np.ndarray) -> tuple[int, np.ndarray]:
        """The blocks that ``samples`` complete, as (index of the first block's first sample,
        a (blocks, block_samples) array)."""
        data = np.concatenate((self._pending, samples)) if len(self._pending) else samples
        n = len(data) // self.block_samples
        first = self._position
        self._pending = data[n * self.block_samples:].copy()
        self._position += n * self.block_samples
        return first, data[: n * self.block_samples].reshape(n, self.block_samples)
