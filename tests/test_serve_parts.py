"""The service's parts with plain inputs: chunk decoding, the scheduler's lanes and turns, settings."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from wyoming.audio import AudioChunk
from wyoming.event import Event, write_event
from wyoming.server import AsyncServer, AsyncTcpServer, AsyncUnixServer

from kwstream.errors import KwstreamError
from kwstream.serve.audio import AudioFormatError, ChunkDecoder
from kwstream.serve.reader import RefusedEvent, read_event
from kwstream.serve.scheduler import ModelScheduler
from kwstream.serve.settings import MAX_WORKERS, ServeSettings


def chunk(samples: np.ndarray, rate: int, width: int, channels: int) -> AudioChunk:
    dtype = {2: "<i2", 4: "<i4"}[width]
    scale = 2 ** (8 * width - 1)
    pcm = np.clip(np.round(samples * scale), -scale, scale - 1).astype(dtype)
    return AudioChunk(rate, width, channels, pcm.tobytes())


def test_16khz_mono_16bit_is_read_exactly():
    pcm = np.array([0, 1, -1, 32767, -32768], dtype="<i2")
    out = ChunkDecoder().decode(AudioChunk(16000, 2, 1, pcm.tobytes()))
    assert out.dtype == np.float32 and np.array_equal(out, pcm.astype(np.float32) / 32768)


def test_48khz_stereo_32bit_becomes_16khz_mono():
    t = np.arange(48000) / 48000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone], axis=1).reshape(-1)
    decoder = ChunkDecoder()
    parts = [decoder.decode(chunk(stereo[i:i + 2 * 4800], 48000, 4, 2)) for i in range(0, len(stereo), 2 * 4800)]
    out = np.concatenate(parts + [decoder.finish()])
    assert abs(len(out) - 16000) <= 2
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(out)) / 16000)
    assert np.abs(out[200:-200] - expected[200:-200]).max() < 0.01  # past the resampler's edges


def test_8bit_unsigned_and_24bit_are_read():
    silence8 = ChunkDecoder().decode(AudioChunk(16000, 1, 1, bytes([128]) * 160))
    assert np.abs(silence8).max() < 1e-6
    half = int(0.5 * 2 ** 23).to_bytes(3, "little", signed=True)
    out24 = ChunkDecoder().decode(AudioChunk(16000, 3, 1, half * 10))
    assert np.allclose(out24, 0.5, atol=1e-4)


@pytest.mark.parametrize("rate,width,channels,size,message", [
    (0, 2, 1, 2, "rate"), (16000, 5, 1, 5, "width"), (16000, 2, 0, 2, "channels"), (16000, 2, 2, 6, "whole frames"),
])
def test_unreadable_chunks_are_refused_with_the_reason(rate, width, channels, size, message):
    with pytest.raises(AudioFormatError, match=message):
        ChunkDecoder().decode(AudioChunk(rate, width, channels, bytes(size)))


def test_a_chunk_holding_more_audio_than_the_limit_is_refused_before_it_is_decoded():
    decoder = ChunkDecoder(max_chunk_s=10.0)
    assert len(decoder.decode(AudioChunk(16000, 2, 1, bytes(2 * 160_000)))) > 0  # 10 s: the limit itself
    with pytest.raises(AudioFormatError, match="at most 10 s a chunk"):
        decoder.decode(AudioChunk(16000, 2, 1, bytes(2 * 160_002)))
    with pytest.raises(AudioFormatError, match="at most 10 s a chunk"):  # 20 KiB at 1 Hz: 5.7 hours, 1.3 GB resampled
        ChunkDecoder(max_chunk_s=10.0).decode(AudioChunk(1, 1, 1, bytes(20_480)))


def test_the_format_may_not_change_mid_stream():
    decoder = ChunkDecoder()
    decoder.decode(AudioChunk(16000, 2, 1, bytes(4)))
    with pytest.raises(AudioFormatError, match="changed"):
        decoder.decode(AudioChunk(22050, 2, 1, bytes(4)))


class FakePipeline:
    """Records the audio it is pushed; takes ``cost_s`` per push (as the encoder would)."""

    def __init__(self, cost_s: float = 0.0, fail: bool = False) -> None:
        self.cost_s = cost_s
        self.fail = fail
        self.pushed: list[np.ndarray] = []
        self.flushed = False
        self.threads: set[str] = set()

    def push(self, samples: np.ndarray) -> list:
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("broken window")
        time.sleep(self.cost_s)
        self.pushed.append(samples)
        return [("pushed", len(samples))]

    def flush(self) -> list:
        self.flushed = True
        return [("flushed",)]


def test_a_lane_delivers_in_order_and_joins_pieces_into_turns():
    scheduler = ModelScheduler(workers=1, turn_s=0.5)
    pipeline, delivered, done = FakePipeline(), [], threading.Event()

    def deliver(outcomes):
        delivered.extend(outcomes)
        if any(o.flushed for o in outcomes):
            done.set()

    lane = scheduler.lane(deliver)
    audio = np.arange(20000, dtype=np.float32)
    for first in range(0, len(audio), 1000):
        lane.push(pipeline, audio[first:first + 1000])
    lane.flush(pipeline)
    assert done.wait(5)
    scheduler.close()
    assert np.array_equal(np.concatenate(pipeline.pushed), audio) and pipeline.flushed
    assert all(len(p) <= 8000 + 1000 for p in pipeline.pushed)  # turns of at most turn_s (plus one piece)
    assert delivered[-1].flushed and lane.backlog_samples == 0


def test_lanes_take_turns_so_a_flood_does_not_starve_a_live_stream():
    scheduler = ModelScheduler(workers=1, turn_s=0.1)
    flood, live = FakePipeline(cost_s=0.01), FakePipeline(cost_s=0.01)
    finished: dict[str, float] = {}
    flood_lane = scheduler.lane(lambda o: finished.__setitem__("flood", time.perf_counter()) if o[-1].flushed else None)
    live_lane = scheduler.lane(lambda o: finished.__setitem__("live", time.perf_counter()) if o[-1].flushed else None)
    for _ in range(200):  # 200 turns' worth, queued at once
        flood_lane.push(flood, np.zeros(1600, np.float32))
    flood_lane.flush(flood)
    live_lane.push(live, np.zeros(1600, np.float32))
    live_lane.flush(live)
    deadline = time.perf_counter() + 10
    while len(finished) < 2 and time.perf_counter() < deadline:
        time.sleep(0.01)
    scheduler.close()
    assert finished["live"] < finished["flood"]
    assert len(flood.pushed) == 200


def test_a_failing_pipeline_reports_an_error_and_the_worker_serves_on():
    scheduler = ModelScheduler(workers=1)
    outcomes, good_done = [], threading.Event()
    bad_lane = scheduler.lane(outcomes.extend)
    good = FakePipeline()
    good_lane = scheduler.lane(lambda o: good_done.set())
    bad_lane.push(FakePipeline(fail=True), np.zeros(10, np.float32))
    good_lane.push(good, np.zeros(10, np.float32))
    assert good_done.wait(5)
    scheduler.close()
    assert outcomes and "broken window" in outcomes[0].error


def test_a_closed_lane_drops_its_audio_and_delivers_nothing():
    scheduler = ModelScheduler(workers=1)
    delivered = []
    lane = scheduler.lane(delivered.append)
    lane.close()
    lane.push(FakePipeline(), np.zeros(10, np.float32))
    time.sleep(0.1)
    scheduler.close()
    assert delivered == [] and lane.backlog_samples == 0


@pytest.mark.parametrize("uri", ["tcp://0.0.0.0", "http://x:1", "tcp://:10400", "unix://", "10400"])
def test_bad_uris_are_the_users_error(uri):
    with pytest.raises(KwstreamError, match="--uri"):
        ServeSettings(uri=uri)


def test_good_uris_are_kept_and_wyoming_listens_where_they_say():
    tcp = AsyncServer.from_uri(ServeSettings(uri="tcp://0.0.0.0:10400").uri)
    assert isinstance(tcp, AsyncTcpServer) and (tcp.host, tcp.port) == ("0.0.0.0", 10400)
    unix = AsyncServer.from_uri(ServeSettings(uri="unix:///run/kwstream.sock").uri)
    assert isinstance(unix, AsyncUnixServer) and unix.socket_path == Path("/run/kwstream.sock")


def read_from(data: bytes, max_payload_bytes: int = 1000) -> Event | None:
    """``read_event`` over an asyncio ``StreamReader`` fed ``data`` (asyncio's default limit, as a server's)."""
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_event(reader, max_payload_bytes)

    return asyncio.run(go())


def wire(event: Event) -> bytes:
    """``event`` as wyoming's own writer sends it."""
    out = io.BytesIO()
    write_event(event, out)
    return out.getvalue()


def test_events_within_the_limit_are_read_as_wyoming_reads_them():
    event = Event("audio-chunk", {"rate": 16000, "width": 2, "channels": 1}, b"\1\2" * 400)
    assert read_from(wire(event)) == event
    assert read_from(wire(Event("describe"))) == Event("describe")
    assert read_from(b"") is None


@pytest.mark.parametrize("field", ["payload_length", "data_length"])
def test_an_announced_length_over_the_limit_is_refused_before_it_is_read(field):
    with pytest.raises(RefusedEvent, match=f"{field} 2147483648 is over") as refused:
        read_from(b'{"type": "audio-chunk", "%s": 2147483648}\n' % field.encode())
    assert refused.value.code == "event-too-large"


def test_a_header_line_over_the_readers_limit_is_refused():
    with pytest.raises(RefusedEvent, match="header line longer") as refused:
        read_from(b'{"type": "' + b"x" * (1 << 17) + b'"}\n')
    assert refused.value.code == "event-too-large"


@pytest.mark.parametrize("line", [b"[1, 2, 3]", b"{not json", b'{"data": {}}', b'{"type": 3}', b'{"type": "x", "data": [1]}',
                                  b'{"type": "x", "payload_length": "many"}', b'{"type": "x", "payload_length": -1}',
                                  b"[" * 30_000 + b"]" * 30_000])
def test_an_unreadable_header_is_refused(line):
    with pytest.raises(RefusedEvent, match="unreadable event header") as refused:
        read_from(line + b"\n")
    assert refused.value.code == "malformed-event"


@pytest.mark.parametrize("data", [b"abc", b"[1]", b"[" * 30_000 + b"]" * 30_000])
def test_unreadable_event_data_is_refused_not_taken_for_the_end_of_the_stream(data):
    """wyoming's reader returns None (the end of the stream) for data that is not JSON and raises
    TypeError or RecursionError for the others."""
    with pytest.raises(RefusedEvent, match="unreadable event data") as refused:
        read_from(b'{"type": "audio-chunk", "data_length": %d}\n' % len(data) + data, max_payload_bytes=1 << 20)
    assert refused.value.code == "malformed-event"


@pytest.mark.parametrize("settings,option", [
    ({"max_backlog_s": float("nan")}, "--max-backlog-s"), ({"max_backlog_s": float("inf")}, "--max-backlog-s"),
    ({"max_backlog_s": 0}, "--max-backlog-s"), ({"idle_timeout_s": float("nan")}, "--idle-timeout"),
    ({"workers": MAX_WORKERS + 1}, "--workers"), ({"workers": 1_000_000}, "--workers"),
])
def test_limits_that_would_switch_a_check_off_or_hang_are_refused(settings, option):
    """NaN passes every comparison: as the backlog it switched off the throttle and the chunk size cap,
    as the idle timeout it closed every connection at once; a million workers never finished starting."""
    with pytest.raises(KwstreamError, match=option):
        ServeSettings(**settings)
    assert ServeSettings(workers=MAX_WORKERS).workers == MAX_WORKERS


def test_idle_timeout_and_payload_limit_are_checked():
    with pytest.raises(KwstreamError, match="--idle-timeout"):
        ServeSettings(idle_timeout_s=-1)
    with pytest.raises(KwstreamError, match="payload"):
        ServeSettings(max_payload_bytes=0)
    assert ServeSettings(idle_timeout_s=0).idle_timeout_s == 0
