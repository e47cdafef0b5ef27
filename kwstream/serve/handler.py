"""One Wyoming connection: describe, detect, audio-start / audio-chunk / audio-stop, as Home Assistant sends them.

The handler runs on the event loop and never waits for the model: decoded audio goes into the
connection's lane (``scheduler.py``) and detections come back from a worker thread through
``call_soon_threadsafe``. Each audio stream has a ``KeywordPipeline`` of its own (VAD, windows,
detector state) on the service's one encoder and keyword set; ``detect`` picks which of the
keywords the next stream reports (the pipeline scores them all: the detector treats keywords
independently, so that changes nothing but what is sent).

A client that sends faster than the model can follow waits: once its lane holds ``max_backlog_s``
of audio the handler stops reading its socket until the backlog halves, so TCP slows the client
down and its memory stays bounded, while the other lanes keep their turns. Events are read by
``reader.py``, which refuses an event announcing more than ``max_payload_bytes`` before reading it.
An event with bad fields is answered with an ``error`` event (the connection lives on); one that
cannot be read (an unreadable or oversized header, data that is not a JSON object) gets an ``error``
event and the connection ends, as does one that sends nothing for ``idle_timeout_s``; each with a
log line, never a traceback. The end of the client's stream after ``audio-stop`` is a client that
has nothing more to ask (it may have only half-closed its socket): its stopped streams are finished
and their events sent before the connection closes; the end of the stream mid-stream is a client
gone, whose audio is abandoned at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.wake import Detect, Detection, NotDetected

from kwstream.audio.io import SAMPLE_RATE
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder
from kwstream.serve.audio import MAX_CHUNK_S, AudioFormatError, ChunkDecoder, check_format
from kwstream.serve.log import ServerLog
from kwstream.serve.reader import RefusedEvent, read_event
from kwstream.serve.scheduler import ModelScheduler, Outcome
from kwstream.serve.settings import ServeSettings
from kwstream.stream.detector import Detection as KeywordDetection
from kwstream.stream.pipeline import KeywordPipeline, PipelineSettings



class WakeService(Protocol):
    """What a connection needs of the server that accepted it (`kwstream.serve.server.WakeService`)."""

    keywords: KeywordSet
    keyword_names: list[str]
    encoder: Encoder
    pipeline_settings: PipelineSettings
    settings: ServeSettings
    log: ServerLog
    info: Info
    scheduler: ModelScheduler | None

    @property
    def clients(self) -> int: ...

    def next_id(self) -> int: ...

    def admit(self, handler: WakeHandler) -> bool: ...

    def release(self, handler: WakeHandler) -> None: ...

MAX_UNSENT_BYTES = 1 << 20
"""Output waiting for a client that does not read it; beyond this the client is dropped."""
FINISH_TIMEOUT_S = 60.0
"""How long a client that ended its stream after ``audio-stop`` waits for its last events: its backlog (at most
``--max-backlog-s`` of audio) takes a fraction of that even with every other lane busy."""
GOODBYE_TIMEOUT_S = 1.0
"""How long a connection being closed may take to accept its last events."""


@dataclass
class AudioStream:
    """One audio-start ... audio-stop of a connection."""

    pipeline: KeywordPipeline
    names: frozenset[str]
    """The keywords this stream reports (its ``detect``'s names, or all)."""
    decoder: ChunkDecoder = field(default_factory=ChunkDecoder)
    received_samples: int = 0
    """Audio received so far (16 kHz): the stream time at which a detection fires."""
    detections: int = 0
    max_backlog_s: float = 0.0
    stopped_at: float | None = None
    """``time.perf_counter()`` when audio-stop arrived."""
    bad_chunks: int = 0

    @property
    def audio_s(self) -> float:
        return self.received_samples / SAMPLE_RATE


class WakeHandler(AsyncEventHandler):
    """The Wyoming wake-word protocol for one client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service: WakeService) -> None:
        super().__init__(reader, writer)
        self.service = service
        peer = writer.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else f"unix#{service.next_id()}"
        self._loop = asyncio.get_running_loop()
        self._lane = service.scheduler.lane(self._from_worker)
        self._names: frozenset[str] = frozenset(service.keyword_names)
        self._stream: AudioStream | None = None
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._ending: dict[KeywordPipeline, AudioStream] = {}
        """Streams after audio-stop whose last audio the model is still running."""
        self._ended = asyncio.Event()
        """Set when a stream leaves ``_ending`` (or the handler stops)."""
        self._closed = False

    async def run(self) -> None:
        if not self.service.admit(self):
            self.service.log.write("refused", self.client, reason="too many clients", max_clients=self.service.settings.max_clients)
            await self._goodbye(f"too many clients: this server takes {self.service.settings.max_clients}", "too-many-clients")
            self.writer.close()
            return
        self.service.log.write("connected", self.client, clients=self.service.clients)
        try:
            await self._serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.service.log.write("vanished", self.client)
        except Exception as exc:  # a defect of the server's own: one connection dropped with a log line, not a traceback
            self.service.log.write("dropped", self.client, reason=f"server error ({type(exc).__name__}: {exc})")

    async def _serve(self) -> None:
        """``AsyncEventHandler.run`` with bounded reads and the idle timeout."""
        self._is_running = True
        try:
            while self._is_running:
                try:
                    event = await self._next_event()
                except RefusedEvent as exc:
                    self.service.log.write("dropped", self.client, reason=str(exc), code=exc.code)
                    await self._goodbye(str(exc), exc.code)
                    break
                if event is None:
                    await self._finish_stopped()
                    break
                if not await self.handle_event(event):
                    break
        finally:
            await self.disconnect()
            self.writer.close()

    async def _next_event(self) -> Event | None:
        """The client's next event; ``RefusedEvent`` once it has sent none for ``idle_timeout_s``
        while the server owes it nothing (a stream being finished or audio waiting for the model)."""
        settings = self.service.settings
        reading = asyncio.ensure_future(read_event(self.reader, settings.max_payload_bytes))
        try:
            while True:
                done, _ = await asyncio.wait({reading}, timeout=settings.idle_timeout_s or None)
                if done:
                    return reading.result()
                if not self._ending and not self._lane.backlog_samples:
                    raise RefusedEvent(f"idle: no event for {settings.idle_timeout_s:g} s", "idle-timeout")
        finally:
            reading.cancel()  # nothing to do once it is done; a read cut short by the timeout or a stop

    async def _finish_stopped(self) -> None:
        """At the end of the client's stream: unless a stream is open (a client gone mid-stream), wait
        for the stopped streams' last events and send them, since a client that half-closes its
        socket after audio-stop still reads."""
        if self._stream is not None:
            return
        try:
            await asyncio.wait_for(self._all_ended(), FINISH_TIMEOUT_S)
        except asyncio.TimeoutError:  # the worker never flushed them (a defect): the disconnect logs them abandoned
            return
        if self._tasks and self._is_running:
            await asyncio.wait(set(self._tasks), timeout=GOODBYE_TIMEOUT_S)

    async def _all_ended(self) -> None:
        while self._ending and self._is_running:
            self._ended.clear()
            await self._ended.wait()

    async def _goodbye(self, text: str, code: str) -> None:
        """A last ``error`` event to a connection about to be closed, if it takes it promptly."""
        try:
            await asyncio.wait_for(self.write_event(Error(text, code=code).event()), GOODBYE_TIMEOUT_S)
        except (ConnectionError, RuntimeError, asyncio.TimeoutError):
            pass

    async def disconnect(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._lane.close()
        for stream in [*self._ending.values(), *([self._stream] if self._stream else [])]:
            self._log_stream_end(stream, "stream-abandoned")
        self.service.release(self)
        self.service.log.write("disconnected", self.client, clients=self.service.clients)

    async def handle_event(self, event: Event) -> bool:
        try:
            if AudioChunk.is_type(event.type):
                await self._on_chunk(AudioChunk.from_event(event))
            elif Describe.is_type(event.type):
                await self.write_event(self.service.info.event())
            elif Detect.is_type(event.type):
                await self._on_detect(Detect.from_event(event))
            elif AudioStart.is_type(event.type):
                self._start(AudioStart.from_event(event))
            elif AudioStop.is_type(event.type):
                self._stop()
            elif Ping.is_type(event.type):
                await self.write_event(Pong(text=Ping.from_event(event).text).event())
            # other events (other domains, newer protocol versions) are dropped, as wyoming servers do
        except AudioFormatError as exc:
            await self._error(str(exc), "bad-audio")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            await self._error(f"malformed {event.type!r} event: {type(exc).__name__}: {exc}", "malformed-event")
        return not self._closed

    async def _error(self, text: str, code: str) -> None:
        self.service.log.write("error", self.client, code=code, text=text)
        await self.write_event(Error(text, code=code).event())

    async def _on_detect(self, detect: Detect) -> None:
        if detect.names is None or not detect.names:
            self._names = frozenset(self.service.keyword_names)
            return
        if not isinstance(detect.names, list) or not all(isinstance(n, str) for n in detect.names):
            raise TypeError(f"names must be a list of strings, got {detect.names!r}")
        known = {name.lower(): name for name in self.service.keyword_names}
        unknown = [n for n in detect.names if n.lower() not in known]
        if unknown:
            await self._error(f"unknown wake word(s) {', '.join(map(repr, unknown))}; this server spots: "
                              f"{', '.join(self.service.keyword_names)} (the selection is unchanged)", "unknown-wake-word")
            return
        self._names = frozenset(known[n.lower()] for n in detect.names)

    def _start(self, start: AudioStart | None = None) -> AudioStream:
        if self._stream is not None:  # audio-start without audio-stop: the old stream ends here
            self._stop()
        if start is not None:  # a bad format is told now (the stream then starts with the first good chunk)
            check_format(start.rate, start.width, start.channels)
        stream = AudioStream(KeywordPipeline(self.service.keywords, self.service.encoder, self.service.pipeline_settings,
                                             events=False, captured=lambda: stream.received_samples), self._names,
                             ChunkDecoder(max(self.service.settings.max_backlog_s, MAX_CHUNK_S)))
        self._stream = stream
        fmt = f"{start.rate} Hz, {start.width * 8} bit, {start.channels} ch" if start else "no audio-start"
        self.service.log.write("stream-start", self.client, format=fmt, keywords=",".join(sorted(self._names)))
        return stream

    def _stop(self) -> None:
        stream = self._stream
        if stream is None:
            return
        self._stream = None
        tail = stream.decoder.finish()  # the resampler's last samples: the stream's end, and its clock's
        stream.received_samples += len(tail)
        self._lane.push(stream.pipeline, tail)
        stream.stopped_at = time.perf_counter()
        self._lane.flush(stream.pipeline)
        self._ending[stream.pipeline] = stream

    async def _on_chunk(self, chunk: AudioChunk) -> None:
        stream = self._stream or self._start()
        try:
            samples = stream.decoder.decode(chunk)
        except AudioFormatError:
            stream.bad_chunks += 1
            if stream.bad_chunks > 1:  # told once per stream; the rest are dropped quietly
                return
            raise
        stream.received_samples += len(samples)
        self._lane.push(stream.pipeline, samples)
        limit = self.service.settings.max_backlog_s
        stream.max_backlog_s = max(stream.max_backlog_s, self._lane.backlog_s)
        while self._lane.backlog_s > limit and self._is_running:
            self._room.clear()  # set again by _on_outcomes once the backlog has halved
            await self._room.wait()

    async def stop(self) -> None:
        await super().stop()
        self._room.set()  # a handler waiting for its backlog to drain, or for its streams to end, ends too
        self._ended.set()

    # -- from the worker ------------------------------------------------------------------------

    def _from_worker(self, outcomes: list[Outcome]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._on_outcomes, outcomes)
        except RuntimeError:  # the loop has closed: the server is stopping
            pass

    def _on_outcomes(self, outcomes: list[Outcome]) -> None:
        if self._closed:
            return
        for outcome in outcomes:
            stream = self._stream if self._stream is not None and self._stream.pipeline is outcome.pipeline \
                else self._ending.get(outcome.pipeline)
            if stream is None:
                continue
            if outcome.error:
                self._send(Error(f"audio could not be processed: {outcome.error}", code="pipeline-error").event())
            for detection in outcome.events:
                if isinstance(detection, KeywordDetection) and detection.keyword in stream.names:
                    stream.detections += 1
                    self._send(Detection(name=detection.keyword, timestamp=round(detection.end * 1000)).event())
                    self.service.log.write("detection", self.client, keyword=detection.keyword, score=detection.score,
                                           start_s=detection.start, end_s=detection.end,
                                           detected_at_s=detection.detected_at, latency_s=detection.latency)
            if outcome.flushed:
                self._ending.pop(outcome.pipeline, None)
                if not stream.detections:
                    self._send(NotDetected().event())
                self._log_stream_end(stream, "stream-end")
                self._ended.set()
        if self._lane.backlog_s <= self.service.settings.max_backlog_s / 2:
            self._room.set()

    def _log_stream_end(self, stream: AudioStream, event: str) -> None:
        lag = time.perf_counter() - stream.stopped_at if stream.stopped_at is not None and event == "stream-end" else None
        stats = stream.pipeline.stats
        self.service.log.write(event, self.client, audio_s=stream.audio_s, detections=stream.detections,
                               compute_s=stats.compute_s, max_backlog_s=stream.max_backlog_s,
                               **({"stop_lag_s": lag} if lag is not None else {}))

    def _send(self, event: Event) -> None:
        """Write ``event`` from the loop thread without waiting for it (a client that stops reading
        is dropped once MAX_UNSENT_BYTES wait for it)."""
        transport = self.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            self.service.log.write("dropped", self.client, reason="does not read what it is sent")
            self.writer.close()
            return
        task = asyncio.ensure_future(self._write_quietly(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_quietly(self, event: Event) -> None:
        try:
            await self.write_event(event)
        except (ConnectionError, RuntimeError):
            pass
