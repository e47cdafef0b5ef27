"""Audio sources that fill a RingBuffer with 16 kHz mono float32 samples.

The microphone writes from PortAudio's callback thread and does nothing else there: mix to mono,
resample if the device cannot run at 16 kHz, copy into the ring. Files and standard input are read
by a thread of their own and written through the same ring, paced in real time unless asked to run
as fast as possible, so that file replay exercises exactly the live code path: paced replay never
waits for the reader (audio it falls behind on is lost and counted, as with a microphone), while
fast replay waits for room in the ring instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from kwstream.audio.convert import NonFiniteCount, StreamResampler, full_scale, pcm16_to_float, to_mono
from kwstream.audio.io import SAMPLE_RATE, audio_info, truncated, unreadable
from kwstream.audio.ring import RingBuffer
from kwstream.errors import AudioInputError

CLOSE_TIMEOUT_S = 2.0
"""How long stopping the microphone waits for PortAudio to close the stream."""


class AudioSource(Protocol):
    """Something that writes 16 kHz mono float32 audio into a ring until stopped or exhausted."""

    name: str
    live: bool
    """True when audio arrives in real time (microphone, paced replay)."""
    recorded: bool
    """True for a recording (file, stdin): ``check``ed as a Spotter is built, where a device is checked as it opens."""
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
    def non_finite_samples(self) -> int:
        """NaN or infinite samples read (a float recording's, in every channel), heard as silence: they reach the
        pipeline through the ring, past the count in ``KeywordPipeline.push``. Optional: a source without it counts 0."""

    @property
    def error(self) -> str | None:
        """A read error that ended the input early, if any."""


def import_sounddevice(instead: str = "read a recording with --file"):
    """Import sounddevice, turning a missing PortAudio into a clear error (suggesting ``instead``)."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise AudioInputError(
            f"PortAudio is not available ({exc}); install it (Debian: libportaudio2) or {instead}"
        ) from None
    return sounddevice


def resolve_input_device(device: int | str | None, instead: str = "read a recording with --file") -> dict:
    """Find an input device by index, name (substring) or the system default; ``instead`` is what the
    errors for no PortAudio or no device at all suggest doing without one (each command takes
    recordings its own way)."""
    sd = import_sounddevice(instead)
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device)
    try:
        info = sd.query_devices(device, kind="input")
    except (ValueError, sd.PortAudioError) as exc:
        if device is None:
            raise AudioInputError(
                f"no input device found ({exc}); connect a microphone or {instead}"
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


class _Source:
    """What every source shares: its name, the ring it writes, the error that ended it early, and
    nothing to check before it starts (each reads its blocks, mixes them to mono and resamples them
    with ``kwstream.audio.convert``)."""

    live: bool
    recorded: bool
    stalled = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._ring: RingBuffer | None = None
        self._error: str | None = None

    @property
    def dropped_frames(self) -> int:
        return 0

    @property
    def non_finite_samples(self) -> int:
        return 0

    @property
    def error(self) -> str | None:
        return self._error

    def check(self) -> None:
        """Nothing to check by default: a stream shows its problems when read."""


class Microphone(_Source):
    """Live capture with sounddevice (PortAudio) at 16 kHz, or at the device's rate and resampled."""

    live = True
    recorded = False

    def __init__(self, device: int | str | None = None, block_ms: int = 20, capture_rate: int | None = None) -> None:
        """
        Args:
            device: index, name (or part of it), or None for the system default.
            block_ms: audio per PortAudio callback.
            capture_rate: the rate to open the device at; None tries 16 kHz, then the device's own.
        """
        super().__init__("microphone")
        self.device = device
        self.block_ms = block_ms
        self.capture_rate = capture_rate
        self.sample_rate = SAMPLE_RATE
        self._stream = None
        self._resampler = StreamResampler(SAMPLE_RATE, SAMPLE_RATE)
        self._dropped = 0

    @property
    def dropped_frames(self) -> int:
        return self._dropped

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
        self._resampler = StreamResampler(rate, SAMPLE_RATE)
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
        self._ring.write(self._resampler.push(to_mono(indata)))

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


class _ReplaySource(_Source):
    """Reads blocks at some native rate in its own thread; resamples, paces, writes to the ring."""

    block_s = 0.02
    recorded = True

    def __init__(self, realtime: bool, name: str) -> None:
        super().__init__(name)
        self.live = realtime
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._non_finite = NonFiniteCount(name, SAMPLE_RATE)  # none yet: ``_decoded`` counts at the recording's rate

    @property
    def non_finite_samples(self) -> int:
        return self._non_finite.samples

    def _open(self) -> Iterator[int | np.ndarray]:
        """Open the input (in the reader's thread: it may wait for its first bytes); yield its rate,
        then (frames, channels) float32 blocks."""
        raise NotImplementedError

    def _ended_early(self) -> str | None:
        """Why the input, read to its end, held less than it promised; None where it was whole."""
        return None

    def _decoded(self, recording) -> Iterator[int | np.ndarray]:
        """An open ``soundfile.SoundFile``'s rate, then its (frames, channels) float32 blocks in full scale
        (``full_scale``: a float recording may hold anything), its NaN and infinities counted as the pipeline counts
        those pushed to it (the ring a source writes reaches the pipeline past ``push``)."""
        yield recording.samplerate
        self._non_finite = NonFiniteCount(self.name, recording.samplerate)
        blocksize = max(1, int(recording.samplerate * self.block_s))
        while len(block := recording.read(blocksize, dtype="float32", always_2d=True)):
            self._non_finite.count(block)
            yield full_scale(block)

    def start(self, ring: RingBuffer) -> None:
        self._ring = ring
        self._thread = threading.Thread(target=self._run, args=(ring,), name="kwstream-replay", daemon=True)
        self._thread.start()

    def samples(self, channel: int | None = None) -> Iterator[np.ndarray]:
        """The input as 16 kHz mono float32 blocks, read and resampled as they are needed (a long
        recording is never held whole): what ``start`` writes to the ring, and what offline work
        (``kwstream scan``) pushes straight into a pipeline. ``channel``: that channel alone (from
        0) instead of the channels' mean (``scan --channels each``: two speakers on two channels)."""
        blocks = self._open()
        resampler = StreamResampler(next(blocks), SAMPLE_RATE)
        for block in blocks:
            yield resampler.push(to_mono(block) if channel is None else np.ascontiguousarray(block[:, channel]))
        if len(tail := resampler.finish()):
            yield tail

    def _run(self, ring: RingBuffer) -> None:
        written = 0
        try:
            t0 = time.perf_counter()
            for mono in self.samples():
                if self._stopping.is_set():
                    break
                ring.write(mono, block=not self.live)  # live audio waits for nobody, as a microphone
                written += len(mono)
                if self.live:
                    ahead = t0 + written / SAMPLE_RATE - time.perf_counter()
                    if ahead > 0:
                        self._stopping.wait(ahead)
            if not self._stopping.is_set():
                self._error = self._ended_early()
        except Exception as exc:  # a corrupt tail: keep what was read, report the rest (once: the caller prints it)
            self._error = f"{self.name}: read error after {written / SAMPLE_RATE:.2f} s: {exc}"
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

    fast_block_s = 0.5
    """Audio read at a time when not paced in real time (``listen --fast``, ``scan``): 20 ms reads,
    each a step of the pipeline, cost a scan a third of its time; the detections do not depend on
    the block size."""

    def __init__(self, path: str | Path, realtime: bool = True) -> None:
        super().__init__(realtime, str(path))
        self.path = Path(path)

    @property
    def block_s(self) -> float:
        return _ReplaySource.block_s if self.live else self.fast_block_s

    def check(self) -> None:
        audio_info(self.path)

    def channels(self) -> int:
        """The recording's channel count (from its header)."""
        return audio_info(self.path).channels

    def _open(self) -> Iterator[int | np.ndarray]:
        import soundfile

        with soundfile.SoundFile(str(self.path)) as recording:
            yield from self._decoded(recording)

    def _ended_early(self) -> str | None:
        problem = truncated(self.path)
        return f"{self.name}: {problem}" if problem else None


STREAMED_CONTAINERS = (b"RIFF", b"RF64")
"""WAV: libsndfile reads it front to back, so it streams (``arecord`` without ``-t raw`` sends one live)."""
WHOLE_CONTAINERS = (b"fLaC", b"OggS")
"""FLAC, OGG: libsndfile seeks about in them, so they are read to their end first (a recording piped in)."""


class RawStdin(_ReplaySource):
    """Audio from a byte stream (standard input): a WAV, FLAC or OGG recording, recognised by its
    first four bytes, else raw 16 kHz mono signed 16-bit little-endian PCM."""

    def __init__(self, stream: BinaryIO | None = None, realtime: bool = True) -> None:
        super().__init__(realtime, "<stdin>")
        self._stream = stream

    def _open(self) -> Iterator[int | np.ndarray]:
        import soundfile

        stream = self._stream if self._stream is not None else sys.stdin.buffer
        head = _read_up_to(stream, 4)
        if head in STREAMED_CONTAINERS + WHOLE_CONTAINERS:
            readable = _pipe(stream, head) if head in STREAMED_CONTAINERS else io.BytesIO(head + stream.read())
            try:
                recording = soundfile.SoundFile(readable, closefd=True)
            except (soundfile.LibsndfileError, RuntimeError) as exc:
                raise unreadable(self.name, exc) from None
            with recording:
                yield from self._decoded(recording)
        else:
            yield SAMPLE_RATE
            yield from self._blocks(stream, head)

    def _blocks(self, stream: BinaryIO, pending: bytes) -> Iterator[np.ndarray]:
        """Raw PCM blocks of ``stream``, after the bytes already read from it (``pending``)."""
        block_bytes = 2 * int(SAMPLE_RATE * self.block_s)
        while chunk := stream.read(block_bytes):
            pending += chunk
            usable = len(pending) - len(pending) % 2
            samples = pcm16_to_float(pending[:usable])
            pending = pending[usable:]
            if len(samples):
                yield samples[:, None]


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    """The stream's first ``size`` bytes (fewer where it ends sooner), over as many reads as a pipe needs."""
    data = b""
    while len(data) < size and (chunk := stream.read(size - len(data))):
        data += chunk
    return data


PIPE_CHUNK_BYTES = 4096


def _pipe(stream: BinaryIO, head: bytes) -> int:
    """The read end of a pipe that gives ``head`` and then the rest of ``stream``, fed by a thread of
    its own: libsndfile reads a WAV from a pipe front to back, where through a file-like object of
    unknown length it seeks past the data to look for more chunks."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        read = getattr(stream, "read1", stream.read)  # what has arrived, not a full buffer's worth
        with contextlib.suppress(BrokenPipeError, OSError), os.fdopen(write_end, "wb") as out:
            out.write(head)
            while chunk := read(PIPE_CHUNK_BYTES):
                out.write(chunk)
                out.flush()

    threading.Thread(target=feed, name="kwstream-stdin-feed", daemon=True).start()
    return read_end
