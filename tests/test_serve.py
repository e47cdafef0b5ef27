"""`kwstream serve` for real: a server subprocess on loopback (and a unix socket), wyoming's own client.

One server serves the module (loading the model takes a while on a busy machine); each test
closes its connections, the max-clients test waits for the server to count them gone, and the
last test stops it with SIGTERM. The unix-socket test runs the service in this process.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient, AsyncUnixClient
from wyoming.error import Error
from wyoming.event import Event, read_event, write_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.wake import Detect, Detection, NotDetected

from conftest import make_speech_stream
from kwstream.assets import DEMO_AUDIO, MODEL_DIR
from kwstream.errors import KwstreamError
from kwstream.evaluation.serve_load import ServerProcess, pipeline_latencies, run_load
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.serve.log import ServerLog
from kwstream.serve.server import ServeSettings, WakeService
from kwstream.stream.pipeline import PipelineSettings

START_TIMEOUT_S = 600
"""Loading the model takes minutes when the machine is busy."""
READ_TIMEOUT_S = 60
DEMO_ENDS = {"hey": 1.19, "stop": 10.08}
"""Where the demo's keywords end (README); the server's timestamps must lie within 0.3 s."""
MAX_CLIENTS = 4
"""Enough for the garbage, stalling, vanishing and good clients at once."""
IDLE_TIMEOUT_S = 8.0
"""Short, so that the idle test is quick, and longer than any other test leaves a connection silent
while it is owed nothing (the load test's clients linger 3 s after audio-stop)."""
FLOOD_BYTES = 256 << 20
"""What the oversized-event client sends of the 2 GB it announces; the server must read none of it."""
HUGE = 1 << 31
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wyoming_client.py"
EIGHT_KHZ = DEMO_AUDIO.parent / "fsdd_3_theo_0.wav"
"""8 kHz, 0.241 s: the resampler holds back 34 ms of it until the end of the stream."""


@pytest.fixture(scope="module")
def server():
    running = ServerProcess(["--model", str(MODEL_DIR), "--idle-timeout", str(IDLE_TIMEOUT_S)], MAX_CLIENTS,
                            start_timeout_s=START_TIMEOUT_S)
    yield running
    assert running.stop() == 0 and "Traceback" not in "\n".join(running.other_lines), running.other_lines


def wait_for(server: ServerProcess, predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate(server.records):
            return True
        time.sleep(0.05)
    return False


def clients_now(records: list[dict]) -> int:
    return next((r["clients"] for r in reversed(records) if "clients" in r), 0)


@pytest.fixture(scope="module")
def encoder():
    from kwstream.model.encoder import Encoder, EncoderSettings

    return Encoder(EncoderSettings(model=str(MODEL_DIR)))


def client(server: ServerProcess) -> AsyncTcpClient:
    return AsyncTcpClient("127.0.0.1", server.port)


def demo_pcm() -> bytes:
    audio, rate = soundfile.read(DEMO_AUDIO, dtype="int16")
    assert rate == 16000
    return audio.tobytes()


async def read(c, timeout_s: float = READ_TIMEOUT_S) -> Event | None:
    return await asyncio.wait_for(c.read_event(), timeout_s)


async def stream(c, pcm: bytes, rate: int = 16000, width: int = 2, channels: int = 1, chunk_bytes: int = 4096,
                 names: list[str] | None = None, realtime: bool = False) -> None:
    await c.write_event(Detect(names=names).event())
    await c.write_event(AudioStart(rate, width, channels).event())
    seconds = chunk_bytes / (rate * width * channels)
    for first in range(0, len(pcm), chunk_bytes):
        await c.write_event(AudioChunk(rate, width, channels, pcm[first:first + chunk_bytes]).event())
        if realtime:
            await asyncio.sleep(seconds)
    await c.write_event(AudioStop().event())


async def results(c, expect: int) -> list[Event]:
    """Events until ``expect`` detections, or not-detected."""
    events = []
    while sum(Detection.is_type(e.type) for e in events) < expect:
        event = await read(c)
        assert event is not None, f"connection closed after {events}"
        events.append(event)
        if NotDetected.is_type(event.type):
            break
    return events


def detections(events: list[Event]) -> list[tuple[str, float]]:
    return [(d.name, d.timestamp / 1000) for d in map(Detection.from_event, filter(lambda e: Detection.is_type(e.type), events))]


def assert_demo_detections(found: list[tuple[str, float]], names=("hey", "stop")) -> None:
    assert [n for n, _ in found] == list(names), found
    for name, timestamp in found:
        assert abs(timestamp - DEMO_ENDS[name]) <= 0.3, found


def test_describe_answers_with_the_served_keywords(server):
    async def go():
        async with client(server) as c:
            await c.write_event(Describe().event())
            return Info.from_event(await read(c))

    info = asyncio.run(go())
    (program,) = info.wake
    assert program.name == "kwstream" and program.installed and program.attribution.name == "kwstream"
    assert [(m.name, m.phrase, m.languages) for m in program.models] == [("hey", "hey", ["en"]), ("stop", "stop", ["en"])]
    assert all(m.version == program.version and m.installed for m in program.models)


def test_the_demo_gives_hey_and_stop_where_the_pipeline_finds_them(server):
    async def go():
        async with client(server) as c:
            await stream(c, demo_pcm())
            return await results(c, 2)

    assert_demo_detections(detections(asyncio.run(go())))
    assert wait_for(server, lambda records: {r.get("keyword") for r in records if r["event"] == "detection"} >= {"hey", "stop"})


def test_the_same_detections_as_the_pipeline_offline(server, encoder):
    from kwstream.audio.io import read_audio
    from kwstream.stream.detector import Detection as Spotted
    from kwstream.stream.pipeline import KeywordPipeline, run

    offline = [(d.keyword, round(d.end * 1000)) for d in
               run(KeywordPipeline(KeywordSet(encoder, ["hey", "stop"]), encoder), read_audio(DEMO_AUDIO))
               if isinstance(d, Spotted)]

    async def go():
        async with client(server) as c:
            await stream(c, demo_pcm(), chunk_bytes=2 * 1024)
            return await results(c, len(offline))

    served = [(d.name, d.timestamp) for d in map(Detection.from_event, asyncio.run(go())) if d.name]
    assert served == offline and offline


def test_keyword_free_speech_gives_not_detected(server):
    audio = make_speech_stream(["3_theo_0", "7_jackson_0", "0_lucas_1", "9_nicolas_2"]).audio
    pcm = (audio * 32767).astype("<i2").tobytes()

    async def go():
        async with client(server) as c:
            await stream(c, pcm)
            return await results(c, 1)

    events = asyncio.run(go())
    assert [e.type for e in events] == ["not-detected"]


def test_an_unknown_name_is_an_error_and_the_connection_lives_on(server):
    async def go():
        async with client(server) as c:
            await c.write_event(Detect(names=["computer"]).event())
            error = await read(c)
            await stream(c, demo_pcm(), names=["stop"])  # only stop is reported now
            return error, await results(c, 1)

    error, events = asyncio.run(go())
    assert Error.is_type(error.type) and "computer" in Error.from_event(error).text
    assert Error.from_event(error).code == "unknown-wake-word"
    assert_demo_detections(detections(events), names=("stop",))


def test_48khz_stereo_32bit_audio_is_converted(server):
    audio, _ = soundfile.read(DEMO_AUDIO, dtype="float32")
    high = soxr.resample(audio, 16000, 48000)
    stereo = np.repeat(high[:, None], 2, axis=1)
    pcm = (np.clip(stereo, -1, 1 - 2 ** -31) * 2 ** 31).astype("<i4").tobytes()

    async def go():
        async with client(server) as c:
            await stream(c, pcm, rate=48000, width=4, channels=2, chunk_bytes=8 * 4800)
            return await results(c, 2)

    assert_demo_detections(detections(asyncio.run(go())))


def test_an_8khz_stream_is_served_to_its_last_sample(server):
    """The resampler's last samples went to the model at audio-stop but not into the stream's count, its clock:
    the stream ended at 0.207 s of 0.241 s."""
    audio, rate = soundfile.read(EIGHT_KHZ, dtype="int16")
    assert rate == 8000

    async def go():
        async with client(server) as c:
            host, port = c._writer.get_extra_info("sockname")[:2]
            await stream(c, audio.tobytes(), rate=8000, chunk_bytes=1600)
            await results(c, 1)
        return f"{host}:{port}"

    name = asyncio.run(go())
    assert wait_for(server, lambda records: any(r["event"] == "stream-end" and r.get("client") == name for r in records))
    (end,) = [r for r in server.records if r["event"] == "stream-end" and r.get("client") == name]
    assert abs(end["audio_s"] - len(audio) / rate) <= 0.002, end


def test_a_malformed_event_is_answered_with_an_error_and_the_connection_lives_on(server):
    async def go():
        async with client(server) as c:
            await c.write_event(Event("audio-start", {"rate": "abc", "width": 2, "channels": 1}))
            bad_start = await read(c)
            await c.write_event(Event("audio-chunk", {"rate": "fast", "width": 2, "channels": 1}, b"\0\0"))
            bad_format = await read(c)
            await c.write_event(Event("audio-chunk", {"width": 2}, b"\0\0"))
            missing = await read(c)
            await c.write_event(Describe().event())
            info = await read(c)
        async with client(server) as c:  # a stream's first bad chunk is told (the rest are dropped quietly)
            await c.write_event(Event("audio-chunk", {"rate": 1, "width": 1, "channels": 1}, bytes(20_480)))
            too_long = await read(c)
            await c.write_event(Describe().event())
            return bad_format, bad_start, too_long, missing, info, await read(c)

    bad_format, bad_start, too_long, missing, info, still = asyncio.run(go())
    assert Error.from_event(bad_format).code == "bad-audio" and "rate" in Error.from_event(bad_format).text
    assert Error.from_event(bad_start).code == "bad-audio" and "'abc'" in Error.from_event(bad_start).text
    assert Error.from_event(too_long).code == "bad-audio" and "s a chunk" in Error.from_event(too_long).text
    assert Error.from_event(missing).code == "malformed-event"
    assert Info.is_type(info.type) and Info.is_type(still.type)


@pytest.mark.parametrize("garbage", [b'{"type": "audio-chunk", "data_length": 3}\nabc',
                                     b'{"type": "audio-chunk", "data_length": 3}\n[1]', b"[" * 30_000 + b"]" * 30_000 + b"\n"])
def test_an_unreadable_event_gets_an_error_event_and_a_log_line_before_the_hang_up(server, garbage):
    """Data that is not JSON used to end the connection in silence (wyoming's reader took it for the
    end of the stream); data that is a list, or a header nested past Python's recursion limit, left a
    log line but no error event."""
    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        host, port = writer.get_extra_info("sockname")[:2]
        writer.write(garbage)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), READ_TIMEOUT_S)
        writer.close()
        return f"{host}:{port}", reply

    name, reply = asyncio.run(go())
    replies = io.BytesIO(reply)
    assert Error.from_event(read_event(replies)).code == "malformed-event" and read_event(replies) is None
    assert wait_for(server, lambda records: any(r["event"] == "dropped" and r.get("client") == name
                                                and r.get("code") == "malformed-event" for r in records))


def test_a_client_that_half_closes_after_audio_stop_gets_every_detection(server):
    """The demo at full speed, audio-stop, then EOF with the read side open: the server used to take
    the EOF for a client gone and drop "stop", still waiting for the model. An EOF mid-stream (no
    audio-stop) is still a client gone: its audio is abandoned."""
    async def go():
        async with client(server) as c:
            await stream(c, demo_pcm())
            c._writer.write_eof()
            events = await results(c, 2)
            finished = await read(c)
        async with client(server) as c:
            await c.write_event(AudioStart(16000, 2, 1).event())
            await c.write_event(AudioChunk(16000, 2, 1, demo_pcm()[:2 * 16000 * 3]).event())
            c._writer.write_eof()
            gone = await read(c)
        return events, finished, gone

    events, finished, gone = asyncio.run(go())
    assert_demo_detections(detections(events))
    assert finished is None and gone is None
    assert wait_for(server, lambda records: [r["event"] for r in records if r["event"].startswith("stream-")][-4:]
                    == ["stream-start", "stream-end", "stream-start", "stream-abandoned"])


@pytest.mark.slow  # real time: stalls and timeouts
def test_garbage_stalling_and_vanishing_clients_do_not_stop_a_good_one(server):
    host, port = "127.0.0.1", server.port

    async def garbage():
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b'[1, 2, 3]\n' + os.urandom(4096))
        await writer.drain()
        await reader.read()  # the server hangs up
        writer.close()

    async def staller(stop: asyncio.Event):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 64000}\n')
        writer.write(b"\0" * 1000)  # then nothing: stuck mid-payload
        await writer.drain()
        await stop.wait()
        writer.close()

    async def vanisher():
        async with client(server) as c:
            await c.write_event(AudioStart(16000, 2, 1).event())
            pcm = demo_pcm()
            for first in range(0, len(pcm) // 2, 8192):
                await c.write_event(AudioChunk(16000, 2, 1, pcm[first:first + 8192]).event())
        # gone without audio-stop

    async def good():
        async with client(server) as c:
            await stream(c, demo_pcm(), chunk_bytes=2048, realtime=True)
            return await results(c, 2)

    async def go():
        stop = asyncio.Event()
        stalled = asyncio.create_task(staller(stop))
        await asyncio.sleep(0.2)
        good_task = asyncio.create_task(good())
        await asyncio.gather(garbage(), vanisher())
        events = await good_task
        stop.set()
        await stalled
        return events

    assert_demo_detections(detections(asyncio.run(go())))
    assert wait_for(server, lambda records: any(r["event"] == "dropped" and "unreadable" in r.get("reason", "") for r in records))


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


def test_events_announcing_too_much_are_refused_unread_while_another_client_is_served(server):
    """A 2 GB payload_length and a header line with no end: each gets an error event (or is hung up on
    mid-send) and its connection closed; the server's memory does not grow by what was sent at it, and
    a good client streaming meanwhile gets its detections."""
    assert wait_for(server, lambda records: clients_now(records) == 0)  # four clients here: the most it takes
    host, port = "127.0.0.1", server.port
    huge = b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": %d}\n' % HUGE
    rss_before = rss_bytes(server.process.pid)

    async def announcer() -> bytes:
        """Announces 2 GB and sends none of it: reads the error event, then the close."""
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(huge)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), READ_TIMEOUT_S)
        writer.close()
        return reply

    async def flood(header: bytes) -> int:
        """Sends ``header`` and then up to FLOOD_BYTES of zeros (no newline); how much the server's
        memory grew."""
        reader, writer = await asyncio.open_connection(host, port)
        sent = 0
        try:
            writer.write(header)
            block = bytes(1 << 20)
            while sent < FLOOD_BYTES:
                writer.write(block)
                await writer.drain()
                sent += len(block)
        except ConnectionError:
            pass
        growth = rss_bytes(server.process.pid) - rss_before  # while this client still holds its socket
        writer.close()
        return growth

    async def good():
        async with client(server) as c:
            await stream(c, demo_pcm())
            return await results(c, 2)

    async def go():
        return await asyncio.wait_for(asyncio.gather(announcer(), flood(huge), flood(b'{"type": "'), good()),
                                      READ_TIMEOUT_S)

    reply, payload_growth, line_growth, events = asyncio.run(go())
    assert payload_growth < 96 << 20 and line_growth < 96 << 20, (payload_growth, line_growth)
    error = Error.from_event(read_event(io.BytesIO(reply)))
    assert error.code == "event-too-large" and str(HUGE) in error.text
    assert_demo_detections(detections(events))
    assert wait_for(server, lambda records: sum(r["event"] == "dropped" and r.get("code") == "event-too-large"
                                                for r in records) >= 3)


@pytest.mark.slow  # real time: waits out the idle timeout
def test_an_idle_connection_is_closed_with_a_log_line(server):
    async def go():
        async with client(server) as c:
            await c.write_event(Describe().event())
            assert Info.is_type((await read(c)).type)
            t0 = time.monotonic()
            error = await read(c, IDLE_TIMEOUT_S + READ_TIMEOUT_S)
            return time.monotonic() - t0, error, await read(c)

    waited_s, error, closed = asyncio.run(go())
    assert Error.from_event(error).code == "idle-timeout" and closed is None
    assert IDLE_TIMEOUT_S - 0.5 <= waited_s < IDLE_TIMEOUT_S + 10
    assert wait_for(server, lambda records: any(r["event"] == "dropped" and r.get("code") == "idle-timeout" for r in records))


def test_clients_beyond_max_clients_get_an_error(server):
    assert wait_for(server, lambda records: clients_now(records) == 0)

    async def go():
        held = [client(server) for _ in range(MAX_CLIENTS)]
        for c in held:
            await c.connect()
            await c.write_event(Describe().event())
            assert Info.is_type((await read(c)).type)
        async with client(server) as extra:
            refused = await read(extra)
            closed = await read(extra)
        for c in held:
            await c.disconnect()
        return refused, closed

    refused, closed = asyncio.run(go())
    assert Error.from_event(refused).code == "too-many-clients" and closed is None
    assert wait_for(server, lambda records: clients_now(records) == 0)


@pytest.mark.slow
def test_the_wyoming_client_example_prints_the_demos_keywords(server):
    run = subprocess.run([sys.executable, str(EXAMPLE), str(DEMO_AUDIO), "--uri", f"tcp://127.0.0.1:{server.port}"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    found = [(line.split()[0], float(line.split()[2])) for line in run.stdout.splitlines()]
    assert_demo_detections(found)


@pytest.mark.slow
@pytest.mark.parametrize("option", [["--uri", "localhost:10400"], ["--max-backlog-s", "nan"], ["--workers", "1000000"]])
def test_cli_refuses_a_bad_setting_in_one_line(option):
    """NaN as the backlog switched off the throttle; a million workers hung the start."""
    # a loopback port of the system's choosing (a later --uri wins) should a bad setting be taken
    done = subprocess.run([sys.executable, "-m", "kwstream", "serve", "--uri", "tcp://127.0.0.1:0", *option, "--keywords", "hey"],
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"kwstream: error: {option[0]} must be"), lines


def unix_service(encoder, path: Path, log: ServerLog | None = None, **settings) -> WakeService:
    return WakeService(KeywordSet(encoder, ["hey", "stop"]), encoder, PipelineSettings(),
                       ServeSettings(uri=f"unix://{path}", **settings), log or ServerLog(json_lines=True))


async def started(service: WakeService) -> asyncio.Task:
    ready = asyncio.Event()
    serving = asyncio.create_task(service.run(on_ready=ready.set))
    await asyncio.wait_for(ready.wait(), READ_TIMEOUT_S)
    return serving


def test_a_unix_socket_service_in_process(encoder, tmp_path: Path):
    path = tmp_path / "kwstream.sock"
    service = unix_service(encoder, path)

    async def go():
        serving = await started(service)
        async with AsyncUnixClient(str(path)) as c:
            await stream(c, demo_pcm()[:2 * 16000 * 3])  # the first 3 s: hey
            events = await results(c, 1)
        service.stop()
        await serving
        return events

    assert_demo_detections(detections(asyncio.run(go())), names=("hey",))
    assert not path.exists()


def test_a_unix_socket_another_server_answers_on_is_refused(encoder, tmp_path: Path):
    """A second server on a live one's socket path used to unlink it and listen in its place: the first ran on
    unreachable, and lost its socket file when the second stopped. Now it is refused as TCP refuses an address in
    use (the command: one line, status 2), and the first serves on."""
    path = tmp_path / "kwstream.sock"
    command = [sys.executable, "-m", "kwstream", "serve", "--model", str(MODEL_DIR), "--keywords", "stop",
               "--uri", f"unix://{path}"]

    async def go():
        first = unix_service(encoder, path)
        serving = await started(first)
        with pytest.raises(KwstreamError, match="address already in use"):
            await asyncio.wait_for(unix_service(encoder, path).run(), READ_TIMEOUT_S)
        second = await asyncio.create_subprocess_exec(*command, stderr=subprocess.PIPE)
        try:
            _, stderr = await asyncio.wait_for(second.communicate(), START_TIMEOUT_S)
        finally:
            if second.returncode is None:
                second.kill()
        async with AsyncUnixClient(str(path)) as c:
            await c.write_event(Describe().event())
            info = Info.from_event(await read(c))
        first.stop()
        await serving
        return second.returncode, stderr.decode().splitlines(), info

    status, lines, info = asyncio.run(go())
    refusal = f"kwstream: error: cannot listen on unix://{path}: address already in use (a server answers there)"
    assert status == 2 and lines == [refusal], lines
    assert [m.name for m in info.wake[0].models] == ["hey", "stop"]
    assert not path.exists()


def test_a_stale_unix_socket_is_replaced_and_a_server_removes_only_its_own(encoder, tmp_path: Path):
    """A socket file nobody answers on (a server that died) is replaced; a server that stops leaves a socket file
    another server has bound since (wyoming unlinked the path whoever owned it); a file that is not a socket is
    not a server's to delete."""
    path = tmp_path / "kwstream.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))
    not_a_socket = tmp_path / "notes.txt"
    not_a_socket.write_text("mine")

    async def go():
        first = unix_service(encoder, path)
        first_serving = await started(first)
        path.unlink()  # e.g. a cleanup of /run; a new server may then take the path
        second = unix_service(encoder, path)
        second_serving = await started(second)
        first.stop()
        await first_serving
        async with AsyncUnixClient(str(path)) as c:
            await c.write_event(Describe().event())
            answer = await read(c)
        second.stop()
        await second_serving
        with pytest.raises(KwstreamError, match="exists and is not a socket"):
            await asyncio.wait_for(unix_service(encoder, not_a_socket).run(), READ_TIMEOUT_S)
        return answer

    assert Info.is_type(asyncio.run(go()).type)
    assert not path.exists() and not_a_socket.read_text() == "mine"


class HeldWorker:
    """A pipeline whose one push holds the model's worker until ``release`` is set: another client's long turn."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def push(self, samples: np.ndarray) -> list:
        self.release.wait(READ_TIMEOUT_S)
        return []

    def flush(self) -> list:
        return []


@pytest.mark.slow  # real time: the server is kept busy past the example's old 3 s of quiet
def test_the_wyoming_client_example_waits_for_a_busy_servers_last_detections(encoder, tmp_path: Path):
    """The whole demo fits in the server's backlog; its one worker is busy for 5 s after the stream starts. The
    example used to give up after 3 s without an event and exit 0, having printed nothing; now it waits for the
    server to finish the stream (and says so when --timeout passes first)."""
    path = tmp_path / "kwstream.sock"
    records: list[dict] = []
    service = unix_service(encoder, path, ServerLog(json_lines=True, sink=lambda line: records.append(json.loads(line))),
                           max_backlog_s=60.0)

    async def example(*options: str, busy_s: float) -> tuple[int, str, str]:
        held = HeldWorker()
        service.scheduler.lane(lambda outcomes: None).push(held, np.zeros(1, np.float32))
        streams = sum(r["event"] == "stream-start" for r in records)
        run = await asyncio.create_subprocess_exec(sys.executable, str(EXAMPLE), str(DEMO_AUDIO), "--uri", f"unix://{path}",
                                                   *options, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while sum(r["event"] == "stream-start" for r in records) == streams and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(busy_s)
        held.release.set()
        out, err = await asyncio.wait_for(run.communicate(), START_TIMEOUT_S)
        return run.returncode, out.decode(), err.decode()

    async def go():
        serving = await started(service)
        waited = await example(busy_s=5.0)
        timed_out = await example("--timeout", "1", busy_s=3.0)
        service.stop()
        await serving
        return waited, timed_out

    (status, out, err), (late_status, late_out, late_err) = asyncio.run(go())
    assert status == 0, err
    assert_demo_detections([(line.split()[0], float(line.split()[2])) for line in out.splitlines()])
    assert late_status == 1 and late_out == "" and "did not finish the stream within 1 s" in late_err, late_err


@pytest.mark.slow  # real time: two clients stream the demo at its own pace
def test_the_load_test_finds_every_keyword_of_two_streams(server, encoder):
    """Whether the streams keep up depends on the machine's other load; that they are served does not,
    nor that no keyword is served sooner than the pipeline alone finds it in the same chunks."""
    seconds = soundfile.info(DEMO_AUDIO).duration
    result = run_load(server, clients=2, seconds=seconds)  # the demo once each: hey, stop
    assert result.errors == 0 and result.false_alarms == 0
    assert result.detected == result.keywords == 4
    alone = pipeline_latencies(encoder, seconds=seconds)
    assert len(alone) == 2 and 0 < min(alone) <= max(alone) < 1
    assert min(alone) <= result.latency_p50_s < 10 and result.latency_max_s >= max(alone)


def test_sigterm_mid_stream_stops_the_server_cleanly(server):
    """The module's server, last: SIGTERM while a client streams; exit 0, no traceback."""
    async def go():
        c = client(server)
        await c.connect()
        await c.write_event(AudioStart(16000, 2, 1).event())
        await c.write_event(AudioChunk(16000, 2, 1, demo_pcm()[:64000]).event())
        await c.write_event(Describe().event())
        assert Info.is_type((await read(c)).type)
        rc = await asyncio.to_thread(server.stop)
        return rc, await read(c)

    rc, closed = asyncio.run(go())
    assert rc == 0 and "Traceback" not in "\n".join(server.other_lines), server.other_lines
    assert closed is None and server.records[-1]["event"] == "stopped"


def sigterm_caught(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(status.split("SigCgt:")[1].split()[0], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def test_sigterm_while_the_model_loads_ends_with_a_log_line_and_status_0():
    """SIGTERM before "listening" (the model's loading: 10-36 s with a classifier) killed the server without a word,
    status 143. The test sends it as soon as the server handles it: without a handler of its own that was only once
    it listened."""
    process = subprocess.Popen([sys.executable, "-m", "kwstream", "serve", "--json", "--model", str(MODEL_DIR),
                                "--uri", "tcp://127.0.0.1:0", "--keywords", "hey"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not sigterm_caught(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        process.terminate()
        stderr = process.communicate(timeout=READ_TIMEOUT_S)[1]
    finally:
        process.kill()
    events = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 0, stderr
    assert events[-1]["event"] == "stopped" and events[-1]["reason"] == "SIGTERM while starting", events
    assert "listening" not in [e["event"] for e in events]


def test_json_logs_every_line_as_json_the_start_ups_warnings_too():
    """A log shipper reading ``--json`` met the model's resolution and the homophone warning as plain text."""
    process = subprocess.Popen([sys.executable, "-m", "kwstream", "serve", "--json", "--uri", "tcp://127.0.0.1:0",
                                "--keywords", "hey,to"], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        lines = [process.stderr.readline()]
        while "listening" not in lines[-1] and lines[-1]:
            lines.append(process.stderr.readline())
    finally:
        process.terminate()
        lines += process.communicate(timeout=60)[1].splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    assert [e["event"] for e in events][-3:] == ["listening", "stopping", "stopped"], events
    assert any(e["event"] == "log" and e["level"] == "warning" and '"to" sounds like' in e["message"] for e in events), events


def test_a_second_sigterm_while_stopping_is_absorbed_and_the_server_ends_with_status_0(tmp_path: Path):
    """Supervisors (systemd, docker) send SIGTERM again, and users press Ctrl-C twice. The server put the default
    actions back as its shutdown began, so a second SIGTERM while it waited for its connections killed it: status 143,
    no "stopped" line. Here a client that takes its answer late keeps the shutdown waiting: its 1 MiB pong fills the
    Unix socket's buffer, so the handler waits to write the rest until the client reads, after the second SIGTERM.
    (A Unix socket: the "listening" line of ``tcp://127.0.0.1:0`` does not say the port.)"""
    path = tmp_path / "kwstream.sock"
    process = subprocess.Popen([sys.executable, "-m", "kwstream", "serve", "--json", "--uri", f"unix://{path}",
                                "--keywords", "hey"], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines: list[str] = []

    def read_until(event: str) -> None:
        while not lines or f'"event": "{event}"' not in lines[-1]:
            lines.append(process.stderr.readline())
            assert lines[-1], f"the server ended before {event!r}: {lines}"

    try:
        read_until("listening")
        ping = io.BytesIO()
        write_event(Ping(text="x" * (1 << 20)).event(), ping)
        with socket.socket(socket.AF_UNIX) as slow:
            slow.connect(str(path))
            slow.sendall(ping.getvalue())
            assert select.select([slow], [], [], READ_TIMEOUT_S)[0], "no pong"  # the handler now waits to write the rest
            process.send_signal(signal.SIGTERM)
            read_until("stopping")
            process.send_signal(signal.SIGTERM)
            slow.settimeout(READ_TIMEOUT_S)
            while slow.recv(1 << 16):  # the pong, then the end of the connection
                pass
        lines += process.communicate(timeout=READ_TIMEOUT_S)[1].splitlines()
    finally:
        process.kill()
    events = [json.loads(line) for line in lines if line.strip()]
    assert process.returncode == 0, lines
    assert next(e for e in events if e["event"] == "stopping")["clients"] == 1, events
    assert events[-1]["event"] == "stopped", events
