"""Reading a client's Wyoming events with bounded memory, telling every unreadable one.

An event is a JSON header line, then ``data_length`` bytes of JSON data, then ``payload_length``
bytes of payload. wyoming's ``async_read_event`` believes the header (a client that announces a
2 GB payload gets 2 GB read into the server's memory) and cannot tell a bad event from the end of
the stream: it returns None for data that is not JSON, and raises whatever ``json`` or the data
merge raise (``RecursionError`` for deep nesting, ``TypeError`` for data that is a list). So
``read_event`` reads the event itself, as wyoming does (the data merged over the header's
``data``), refuses lengths over a limit before a byte of them is read, and turns every unreadable
part into a ``RefusedEvent``. The header line is bounded by the socket's ``StreamReader`` limit
(asyncio's 64 KiB, which wyoming's servers keep): a longer line is dropped from the buffer and refused.
"""

from __future__ import annotations

import asyncio
import json

from wyoming.event import Event

HEADER_LIMIT_BYTES = 1 << 16
"""asyncio's default ``StreamReader`` limit: the longest header line (only named in messages)."""
LENGTH_FIELDS = ("data_length", "payload_length")


class RefusedEvent(Exception):
    """An event the server will not read; the connection ends with it (what follows cannot be trusted to be framed)."""

    def __init__(self, text: str, code: str) -> None:
        super().__init__(text)
        self.code = code


def _json(raw: bytes, what: str) -> object:
    """``raw`` parsed; ``RefusedEvent`` where it is not JSON or nested too deep for Python's parser."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RefusedEvent(f"unreadable event {what} ({type(exc).__name__}: {exc})", "malformed-event") from None


async def read_event(reader: asyncio.StreamReader, max_payload_bytes: int) -> Event | None:
    """The next event, or None at the end of the stream; ``RefusedEvent`` for a header line over
    the reader's limit, one that is not a JSON object with a ``type``, a ``data_length`` or
    ``payload_length`` over ``max_payload_bytes``, or data that is not a JSON object."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio has already dropped the overlong line from its buffer
        raise RefusedEvent(f"event header line longer than {HEADER_LIMIT_BYTES} bytes", "event-too-large") from None
    if not line:
        return None
    header = _json(line, "header")
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
    data = dict(header.get("data", {}))
    if header.get("data_length"):
        more = _json(await reader.readexactly(header["data_length"]), "data")
        if not isinstance(more, dict):
            raise RefusedEvent("unreadable event data (not a JSON object)", "malformed-event")
        data.update(more)
    payload = await reader.readexactly(header["payload_length"]) if header.get("payload_length") else None
    return Event(type=header["type"], data=data, payload=payload)
