"""Reading a client's Wyoming events with bounded memory.

An event is a JSON header line, then ``data_length`` bytes of JSON data, then ``payload_length``
bytes of payload. wyoming's ``async_read_event`` believes the header: a client that announces a
2 GB payload gets 2 GB read into the server's memory. So ``read_event`` reads the header line
itself, refuses lengths over a limit before a byte of them is read, and only then hands the line
back to wyoming's own ``async_read_event`` (through ``_HeaderReplay``), so the parsing and the data
merge stay wyoming's. The header line is bounded by the socket's ``StreamReader`` limit (asyncio's
64 KiB, which wyoming's servers keep): a longer line is dropped from the buffer and refused.
"""

from __future__ import annotations

import asyncio
import json

from wyoming.event import Event, async_read_event

HEADER_LIMIT_BYTES = 1 << 16
"""asyncio's default ``StreamReader`` limit: the longest header line (only named in messages)."""
LENGTH_FIELDS = ("data_length", "payload_length")


class RefusedEvent(Exception):
    """An event the server will not read; the connection cannot go on (the stream's framing is lost)."""

    def __init__(self, text: str, code: str) -> None:
        super().__init__(text)
        self.code = code


class _HeaderReplay:
    """The stream as wyoming's ``async_read_event`` reads it: the header line read here, then the socket."""

    def __init__(self, line: bytes, reader: asyncio.StreamReader) -> None:
        self._line = line
        self._reader = reader

    async def readline(self) -> bytes:
        return self._line

    async def readexactly(self, n: int) -> bytes:
        return await self._reader.readexactly(n)


async def read_event(reader: asyncio.StreamReader, max_payload_bytes: int) -> Event | None:
    """The next event, or None at the end of the stream; ``RefusedEvent`` for a header line over
    the reader's limit, one that is not a JSON object with a ``type``, or a ``data_length`` or
    ``payload_length`` over ``max_payload_bytes``."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio has already dropped the overlong line from its buffer
        raise RefusedEvent(f"event header line longer than {HEADER_LIMIT_BYTES} bytes", "event-too-large") from None
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise RefusedEvent(f"unreadable event header (not JSON: {exc})", "malformed-event") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str) \
            or not isinstance(header.get("data", {}), dict):
        raise RefusedEvent("unreadable event header (not a JSON object with a type and object data)", "malformed-event")
    for name in LENGTH_FIELDS:
        length = header.get(name)
        if length is None:
            continue
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise RefusedEvent(f"unreadable event header ({name} {length!r} is not a byte count)", "malformed-event")
        if length > max_payload_bytes:
            raise RefusedEvent(f"event too large: {name} {length} is over this server's {max_payload_bytes} bytes",
                               "event-too-large")
    return await async_read_event(_HeaderReplay(line, reader))  # type: ignore[arg-type]
