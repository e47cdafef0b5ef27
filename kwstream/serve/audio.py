"""Wyoming audio chunks of any format as the pipeline's 16 kHz mono float32.

A client says each chunk's rate, sample width and channel count. Sample widths (1-4 bytes, 8-bit unsigned)
go through wyoming's own ``AudioChunkConverter`` (audioop's rules) to 32-bit; channels are
averaged; other rates are resampled by the streaming resampler (``kwstream.audio.convert``) that
``listen`` uses for recordings, so a 16 kHz chunk reaches the pipeline bit for bit as ``listen --file`` reads it.
"""

from __future__ import annotations

import numpy as np
from wyoming.audio import AudioChunk, AudioChunkConverter

from kwstream.audio.convert import StreamResampler, pcm16_to_float, pcm32_to_float, to_mono
from kwstream.audio.io import SAMPLE_RATE
from kwstream.errors import KwstreamError

MAX_RATE = 384_000
MAX_CHUNK_S = 10.0
"""The most audio a chunk may hold where the server's backlog allows less (Home Assistant's hold 64 ms)."""
MAX_CHANNELS = 32
WIDTHS = (1, 2, 3, 4)
"""Sample widths in bytes that a chunk may have."""


class AudioFormatError(KwstreamError):
    """A chunk the server cannot read (told to the client as an ``error`` event)."""


class ChunkDecoder:
    """One audio stream's chunks as 16 kHz mono float32; the format may not change mid-stream."""

    def __init__(self, max_chunk_s: float = float("inf")) -> None:
        """``max_chunk_s``: the most audio one chunk may hold (the server's: ``MAX_CHUNK_S`` or its backlog, the
        longer), checked before it is decoded: a few KiB at a rate of 1 Hz would otherwise resample to gigabytes."""
        self.max_chunk_s = max_chunk_s
        self._format: tuple[int, int, int] | None = None
        self._widen = AudioChunkConverter(width=4)
        self._resampler: StreamResampler | None = None

    def decode(self, chunk: AudioChunk) -> np.ndarray:
        """The chunk's samples at 16 kHz mono (a resampler may hold a few back until the next chunk)."""
        fmt = (chunk.rate, chunk.width, chunk.channels)
        if self._format is None:
            check_format(*fmt)
            self._format = fmt
            self._resampler = StreamResampler(chunk.rate, SAMPLE_RATE)
        elif fmt != self._format:
            raise AudioFormatError(f"audio format changed mid-stream from {self._format} to {fmt} (rate, width, channels)")
        frame_bytes = chunk.width * chunk.channels
        if len(chunk.audio) % frame_bytes:
            raise AudioFormatError(f"chunk of {len(chunk.audio)} bytes is not whole frames of {frame_bytes} bytes")
        if (seconds := len(chunk.audio) // frame_bytes / chunk.rate) > self.max_chunk_s:
            raise AudioFormatError(f"a chunk of {seconds:.3g} s of audio: send at most {self.max_chunk_s:g} s a chunk")
        if chunk.width == 2:  # the usual case: no copy through audioop
            samples = pcm16_to_float(chunk.audio)
        else:
            wide = self._widen.convert(chunk).audio
            samples = pcm32_to_float(wide)
        samples = to_mono(samples.reshape(-1, chunk.channels))
        samples = self._resampler.push(samples)
        return np.ascontiguousarray(samples, dtype=np.float32)

    def finish(self) -> np.ndarray:
        """The samples a resampler still holds at the end of the stream."""
        return np.zeros(0, np.float32) if self._resampler is None else self._resampler.finish()


def check_format(rate: object, width: object, channels: object) -> None:
    if not isinstance(rate, int) or not 0 < rate <= MAX_RATE:
        raise AudioFormatError(f"rate must be a whole number of Hz in 1-{MAX_RATE}, got {rate!r}")
    if width not in WIDTHS:
        raise AudioFormatError(f"width must be 1, 2, 3 or 4 bytes, got {width!r}")
    if not isinstance(channels, int) or not 0 < channels <= MAX_CHANNELS:
        raise AudioFormatError(f"channels must be 1-{MAX_CHANNELS}, got {channels!r}")
