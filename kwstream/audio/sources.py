"""Audio sources that fill a RingBuffer with 16 kHz mono float32 samples.

The microphone writes from PortAudio's callback thread and does nothing else there: mix to mono,
resample if the device cannot run at 16 kHz, copy into the ring. Files and standard input are read
by a thread of their own and written through the same ring, paced in real time unless asked to run
as fast as possible, so that file replay exercises exactly the live code path: paced replay never
waits for the reader (audio it falls behind on is lost and counted, as with a microphone), while
fast replay waits for room in the ring instead.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import soxr

from kwstream.audio.io import SAMPLE_RATE
from kwstream.audio.ring import RingBuffer
from kwstream.errors import AudioInputError

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 2.0
"""How long stopping the microphone waits for PortAudio to close the stream."""


class AudioSource(Protocol):
    """Something that writes 16 kHz mono float32 audio into a ring until stopped or exhausted."""

    name: str
    live: bool
    """True when audio arrives in real time (microphone, paced replay)."""
    stalled: bool
    """True once ``stop`` has given up on an input that would not close: the process can then only
    end without its exit handlers (``os._exit``), since PortAudio's would wait on it for ever."""

    def check(self) -> None:
        """Raise AudioInputError now if the input cannot be opened (before a model loads for minutes)."""

    def start(self, ring: RingBuffer) -> None:
        """Open the input (raising AudioInputError on failure) and begin writing into ``ring``."""

    def stop(self) -> None:
        """Stop writing; idempotent."""

    @property
    def dropped_frames(self) -> int:
        """Frames the input itself reported as lost (PortAudio input overflows)."""

    @property
    def error(self) -> str | None:
        """A read error that ended the input early, if any."""


def import_sounddevice():
    """Import sounddevice, turning a missing PortAudio into a clear error."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise AudioInputError(
            f"PortAudio is not available ({exc}); install it (Debian: libportaudio2) "
            "or read a recording with --file"
        ) from None
    return sounddevice


def resolve_input_device(device: int | str | None) -> dict:
    """Find an input device by index, name (substring) or the system default."""
    sd = import_sounddevice()
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device)
    try:
        info = sd.query_devices(device, kind="input")
    except (ValueError, sd.PortAudioError) as exc:
        if device is None:
            raise AudioInputError(
                f"no input device found ({exc}); connect a microphone or read a recording with --file"
            ) from None
        raise AudioInputError(
            f"unknown input device {device!r} ({exc}); `kwstream devices` lists them"
        ) from None
    if info["max_input_channels"] < 1:
        raise AudioInputError(f"device {info['name']!r} has no input channels; `kwstream devices` lists them")
    return info


def list_input_devices() -> list[dict]:
    """All devices with at least one input channel, as sounddevice describes them."""
    sd = import_sounddevice()
    return [dict(d) for d in sd.query_devices() if d["max_input_channels"] > 0]


def _to_mono(block: np.ndarray) -> np.ndarray:
    return block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)


class Microphone:
    """Live capture with sounddevice (PortAudio) at 16 kHz, or at the device's rate and resampled."""

    live = True

    def __init__(self, device: int | str | None = None, block_ms: int = 20, capture_rate: int | None = None) -> None:
        """
        Args:
            device: index, name (or part of it), or None for the system default.
            block_ms: audio per PortAudio callback.
            capture_rate: the rate to open the device at; None tries 16 kHz, then the device's own.
        """
        self.device = device
        self.block_ms = block_ms
        self.capture_rate = capture_rate
        self.name = "microphone"
        self.sample_rate = SAMPLE_RATE
        self._stream = None
        self._ring: RingBuffer | None = None
        self._resampler: soxr.ResampleStream | None = None
        self._dropped = 0
        self._error: str | None = None
        self.stalled = False

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    @property
    def error(self) -> str | None:
        return self._error

    def check(self) -> None:
        resolve_input_device(self.device)

    def start(self, ring: RingBuffer) -> None:
        sd = import_sounddevice()
        info = resolve_input_device(self.device)
        self.name = info["name"]
        channels = 1
        rate = self.capture_rate or SAMPLE_RATE
        try:
            sd.check_input_settings(device=info["index"], channels=1, samplerate=rate, dtype="float32")
        except (ValueError, sd.PortAudioError):
            if self.capture_rate:
                raise AudioInputError(f"device {info['name']!r} cannot capture at {rate} Hz") from None
            rate = int(info["default_samplerate"])
            channels = min(2, info["max_input_channels"])
        self.sample_rate = rate
        if rate != SAMPLE_RATE:
            self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        self._ring = ring
        try:
            self._stream = sd.InputStream(
                device=info["index"],
                channels=channels,
                samplerate=rate,
                dtype="float32",
                blocksize=int(rate * self.block_ms / 1000),
                callback=self._callback,
            )
            self._stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioInputError(f"cannot open input device {self.name!r}: {exc}") from None

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        # PortAudio's thread: copy and go; nothing here may block or raise.
        if status.input_overflow:
            self._dropped += 1
        mono = _to_mono(indata)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        self._ring.write(mono)

    def stop(self) -> None:
        """Abort the stream (a stop would wait for a callback that a stalled device never ends),
        from a helper thread given ``CLOSE_TIMEOUT_S``: past that the device counts as stalled."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            closing = threading.Thread(target=_abort_and_close, args=(stream,), name="kwstream-close-input", daemon=True)
            closing.start()
            closing.join(CLOSE_TIMEOUT_S)
            if closing.is_alive():
                self.stalled = True
                self._error = f"input device {self.name!r} stalled: it stopped giving audio and did not close"
        if self._ring is not None:
            self._ring.close()


def _abort_and_close(stream) -> None:
    stream.abort()
    stream.close()


class _ReplaySource:
    """Reads blocks at some native rate in its own thread; resamples, paces, writes to the ring."""

    block_s = 0.02
    stalled = False

    def __init__(self, realtime: bool) -> None:
        self.live = realtime
        self.name = ""
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._error: str | None = None

    @property
    def dropped_frames(self) -> int:
        return 0

    @property
    def error(self) -> str | None:
        return self._error

    def check(self) -> None:
        """Nothing to check by default: a stream shows its problems when read."""

    def _open(self) -> tuple[int, Iterator[np.ndarray]]:
        """Open the input; return its rate and an iterator of (frames, channels) float32 blocks."""
        raise NotImplementedError

    def start(self, ring: RingBuffer) -> None:
        rate, blocks = self._open()
        self._ring = ring
        self._thread = threading.Thread(target=self._run, args=(ring, rate, blocks), name="kwstream-replay", daemon=True)
        self._thread.start()

    def _run(self, ring: RingBuffer, rate: int, blocks: Iterator[np.ndarray]) -> None:
        resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None
        written = 0
        t0 = time.perf_counter()
        try:
            for block in blocks:
                if self._stopping.is_set():
                    break
                mono = _to_mono(block)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono)
                ring.write(mono, block=not self.live)  # live audio waits for nobody, as a microphone
                written += len(mono)
                if self.live:
                    ahead = t0 + written / SAMPLE_RATE - time.perf_counter()
                    if ahead > 0:
                        self._stopping.wait(ahead)
            else:
                if resampler is not None:
                    ring.write(resampler.resample_chunk(np.zeros(0, np.float32), last=True), block=not self.live)
        except Exception as exc:  # a corrupt tail: keep what was read, report the rest
            self._error = f"{self.name}: read error after {written / SAMPLE_RATE:.2f} s: {exc}"
            log.error("%s", self._error)
        finally:
            ring.close()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            # the reader may be blocked in a read that never returns (a silent pipe): end the stream anyway
            self._ring.close()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5)


class AudioFile(_ReplaySource):
    """A recording (WAV, FLAC, OGG, ...: whatever libsndfile reads), any rate and channel count."""

    def __init__(self, path: str | Path, realtime: bool = True) -> None:
        super().__init__(realtime)
        self.path = Path(path)
        self.name = str(path)

    def check(self) -> None:
        self._info()

    def _info(self):
        import soundfile

        if not self.path.is_file():
            raise AudioInputError(f"no such audio file: {self.path}")
        try:
            return soundfile.info(str(self.path))
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            raise AudioInputError(f"cannot read {self.path} as audio: {exc}") from None

    def _open(self) -> tuple[int, Iterator[np.ndarray]]:
        import soundfile

        info = self._info()
        blocksize = max(1, int(info.samplerate * self.block_s))
        blocks = soundfile.blocks(str(self.path), blocksize=blocksize, dtype="float32", always_2d=True)
        return info.samplerate, blocks


class RawStdin(_ReplaySource):
    """Raw 16 kHz mono signed 16-bit little-endian PCM from a byte stream (standard input)."""

    def __init__(self, stream: BinaryIO | None = None, realtime: bool = True) -> None:
        super().__init__(realtime)
        self._stream = stream
        self.name = "<stdin>"

    def _open(self) -> tuple[int, Iterator[np.ndarray]]:
        stream = self._stream if self._stream is not None else sys.stdin.buffer
        return SAMPLE_RATE, self._blocks(stream)

    def _blocks(self, stream: BinaryIO) -> Iterator[np.ndarray]:
        block_bytes = 2 * int(SAMPLE_RATE * self.block_s)
        pending = b""
        while chunk := stream.read(block_bytes):
            pending += chunk
            usable = len(pending) - len(pending) % 2
            samples = np.frombuffer(pending[:usable], dtype="<i2").astype(np.float32) / 32768.0
            pending = pending[usable:]
            if len(samples):
                yield samples[:, None]
