"""Load test of ``kwstream serve``: N real Wyoming clients on loopback, each streaming recorded
speech in real time, against one server process.

The server runs as a subprocess (``kwstream serve --json`` on 127.0.0.1), so its CPU time is its
own. Each client (wyoming's ``AsyncTcpClient``, all in this process's event loop) streams the demo
recording, repeated to the length asked for, in 1024-sample chunks, each sent when its last sample
would have been captured by a microphone; starts are staggered over a second (seeded). For every
keyword spoken, the latency is the wall time from the moment its last sample was captured (its
known end) to the client receiving its ``detection``. Whether a stream kept up comes from the
server's own stream-end log line: the most audio that waited for the model (``max_backlog_s``)
and the time from audio-stop to the stream's last window (``stop_lag_s``). Every run is bounded:
its streams' length plus a fixed margin, then the clients are cancelled.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kwstream.assets import DEMO_AUDIO
from kwstream.audio.convert import float_to_pcm16, pcm16_to_float
from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.errors import KwstreamError
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder
from kwstream.stream.detector import Detection as KeywordDetection
from kwstream.stream.pipeline import KeywordPipeline

DEMO_WORDS = (("hey", 0.81, 1.19), ("stop", 9.72, 10.08))
"""Where the demo's keywords lie (seconds): the alignment ``kwstream listen`` reports on it (README)."""
CHUNK_SAMPLES = 1024
"""Audio per audio-chunk event, wyoming-satellite's default (64 ms)."""
STAGGER_S = 1.0
LINGER_S = 3.0
"""How long a client keeps reading after audio-stop (a stream with detections gets no reply to it)."""
MATCH_S = 0.5
"""A detection belongs to a spoken keyword of its name whose end lies within this of its timestamp."""
KEPT_UP_BACKLOG_S = 1.0
"""A stream kept up if no more audio than this ever waited for the model, and its end was done in as little."""
SERVER_START_TIMEOUT_S = 180.0
RUN_MARGIN_S = 30.0
STOP_TIMEOUT_S = 120.0
"""How long the server may take to exit after SIGTERM before it is killed (a starved machine is slow)."""


@dataclass
class ClientResult:
    address: str
    latencies_s: list[float] = field(default_factory=list)
    missed: int = 0
    false_alarms: int = 0
    error: str | None = None


@dataclass(frozen=True)
class LoadResult:
    clients: int
    audio_s: float
    """Audio each client streamed."""
    keywords: int
    """Keywords spoken across all streams; ``detected`` of them were detected."""
    detected: int
    false_alarms: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_max_s: float | None
    server_cpu_cores: float
    """Server CPU seconds (all threads) per wall second of the run: 1.0 is one core busy."""
    max_backlog_s: float
    """The most audio any stream had waiting for the model."""
    max_stop_lag_s: float
    """The longest time from a stream's audio-stop to its last window done."""
    streams_kept_up: int
    errors: int
    """Clients that failed (could not connect, lost the connection, got an error event)."""


def demo_stream(seconds: float) -> tuple[bytes, list[tuple[str, float]]]:
    """The demo recording repeated and cut to ``seconds``, as 16-bit mono PCM, and the end of each
    keyword spoken whole in it."""
    audio = read_audio(DEMO_AUDIO)
    length_s = len(audio) / SAMPLE_RATE
    repeats = max(1, int(np.ceil(seconds / length_s)))
    samples = np.tile(audio, repeats)[:round(seconds * SAMPLE_RATE)]
    pcm = float_to_pcm16(samples).tobytes()
    ends = [(word, k * length_s + end) for k in range(repeats) for word, _, end in DEMO_WORDS if k * length_s + end <= seconds]
    return pcm, ends


class ServerProcess:
    """``kwstream serve`` on a free loopback port, its JSON log lines collected as they come."""

    def __init__(self, args: list[str], max_clients: int, start_timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [sys.executable, "-m", "kwstream", "serve", "--uri", f"tcp://127.0.0.1:{self.port}", "--json",
                   "--max-clients", str(max_clients), "--keywords", ",".join(w for w, _, _ in DEMO_WORDS), *args]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.records: list[dict] = []
        self.other_lines: list[str] = []
        self._listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._listening.wait(start_timeout_s) or self.process.poll() is not None:
            self.stop()
            raise KwstreamError("the server did not start: " + " | ".join(self.other_lines[-5:]))

    def _read(self) -> None:
        for line in self.process.stderr:
            try:
                record = json.loads(line)
            except ValueError:
                self.other_lines.append(line.strip())
                continue
            self.records.append(record)
            if record.get("event") == "listening":
                self._listening.set()
        self._listening.set()

    def cpu_s(self) -> float:
        """The server's CPU seconds so far (user + system, every thread)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


async def stream_once(port: int, pcm: bytes, ends: list[tuple[str, float]], delay_s: float) -> ClientResult:
    """One client: detect, audio-start, the chunks in real time, audio-stop; its latencies."""
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.error import Error
    from wyoming.wake import Detect, Detection

    await asyncio.sleep(delay_s)
    loop = asyncio.get_running_loop()
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    host, local_port = client._writer.get_extra_info("sockname")[:2]
    result = ClientResult(f"{host}:{local_port}")
    detections: list[tuple[str, float, float]] = []  # name, timestamp s, received (loop time)

    async def receive() -> None:
        while (event := await client.read_event()) is not None:
            if Detection.is_type(event.type):
                d = Detection.from_event(event)
                detections.append((d.name, d.timestamp / 1000, loop.time()))
            elif Error.is_type(event.type):
                result.error = Error.from_event(event).text

    reader = asyncio.create_task(receive())
    try:
        await client.write_event(Detect().event())
        await client.write_event(AudioStart(SAMPLE_RATE, 2, 1, timestamp=0).event())
        t0 = loop.time()
        step = 2 * CHUNK_SAMPLES
        for i, first in enumerate(range(0, len(pcm), step)):
            await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK_SAMPLES / SAMPLE_RATE - loop.time()))
            await client.write_event(AudioChunk(SAMPLE_RATE, 2, 1, pcm[first:first + step],
                                                timestamp=first * 500 // SAMPLE_RATE).event())
        await client.write_event(AudioStop().event())
        await asyncio.sleep(LINGER_S)
    except (ConnectionError, OSError) as exc:
        result.error = str(exc)
    finally:
        reader.cancel()
        await client.disconnect()
    received = [(name, timestamp, at - t0) for name, timestamp, at in detections]
    result.latencies_s, result.missed, result.false_alarms = match(received, ends)
    return result


def match(detections: list[tuple[str, float, float]], ends: list[tuple[str, float]]) -> tuple[list[float], int, int]:
    """Each spoken keyword's detection (name, timestamp s, received s): the latencies (received minus
    the keyword's end), the keywords missed, and the detections that match none (false alarms)."""
    unmatched = list(detections)
    latencies = []
    for word, end in ends:
        hit = next((d for d in unmatched if d[0] == word and abs(d[1] - end) <= MATCH_S), None)
        if hit is None:
            continue
        unmatched.remove(hit)
        latencies.append(hit[2] - end)
    return latencies, len(ends) - len(latencies), len(unmatched)


def pipeline_latencies(encoder: Encoder, seconds: float) -> list[float]:
    """The load test's stream pushed into a pipeline alone (the server's default settings), in the
    clients' chunks: each keyword's latency is the end of the chunk that brought its detection minus
    its end. No server, no transport, no compute time: what the served latencies cannot go below,
    however connections are scheduled (the pipeline needs audio past a keyword's end: its right
    context and the smoothed windows)."""
    pipeline = KeywordPipeline(KeywordSet(encoder, [word for word, _, _ in DEMO_WORDS]), encoder, events=False)
    pcm, ends = demo_stream(seconds)
    audio = pcm16_to_float(pcm)
    detections = []
    for first in range(0, len(audio), CHUNK_SAMPLES):
        stop = min(len(audio), first + CHUNK_SAMPLES)
        detections += [(e.keyword, e.end, stop / SAMPLE_RATE) for e in pipeline.push(audio[first:stop])
                       if isinstance(e, KeywordDetection)]
    return match(detections, ends)[0]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]


def run_load(server: ServerProcess, clients: int, seconds: float, seed: int = 0) -> LoadResult:
    """``clients`` concurrent streams of ``seconds`` each against ``server``; bounded in time."""
    pcm, ends = demo_stream(seconds)
    audio_s = len(pcm) / 2 / SAMPLE_RATE
    rng = random.Random(seed)
    delays = [rng.uniform(0, STAGGER_S) for _ in range(clients)]
    first_record = len(server.records)

    async def everyone() -> list[ClientResult | BaseException]:
        tasks = [stream_once(server.port, pcm, ends, d) for d in delays]
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                      audio_s + STAGGER_S + LINGER_S + RUN_MARGIN_S)

    cpu0, wall0 = server.cpu_s(), time.perf_counter()
    try:
        results = asyncio.run(everyone())
    except asyncio.TimeoutError:
        results = [KwstreamError("the run took too long")] * clients
    cpu_cores = (server.cpu_s() - cpu0) / (time.perf_counter() - wall0)
    time.sleep(0.5)  # the last log lines
    ok = [r for r in results if isinstance(r, ClientResult)]
    addresses = {r.address for r in ok}
    ended = [r for r in server.records[first_record:] if r.get("event") == "stream-end" and r.get("client") in addresses]
    latencies = [x for r in ok for x in r.latencies_s]
    backlog = max((r["max_backlog_s"] for r in ended), default=float("nan"))
    lag = max((r.get("stop_lag_s", float("nan")) for r in ended), default=float("nan"))
    kept_up = sum(r["max_backlog_s"] <= KEPT_UP_BACKLOG_S and r.get("stop_lag_s", 1e9) <= KEPT_UP_BACKLOG_S for r in ended)
    return LoadResult(
        clients=clients, audio_s=audio_s, keywords=len(ends) * clients, detected=len(latencies),
        false_alarms=sum(r.false_alarms for r in ok), latency_p50_s=percentile(latencies, 0.5),
        latency_p95_s=percentile(latencies, 0.95), latency_max_s=max(latencies, default=None),
        server_cpu_cores=cpu_cores, max_backlog_s=backlog, max_stop_lag_s=lag, streams_kept_up=kept_up,
        errors=sum(not isinstance(r, ClientResult) or r.error is not None for r in results),
    )


def serve_load(client_counts: list[int], seconds: float, server_args: list[str]) -> list[LoadResult]:
    """One server for every count; one bounded run per count, in the order given."""
    server = ServerProcess(server_args, max(client_counts))
    try:
        return [run_load(server, n, seconds, seed=n) for n in client_counts]
    finally:
        server.stop()
