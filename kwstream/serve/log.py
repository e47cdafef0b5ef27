"""The server's log: one line per connection, stream and detection, as text or JSON lines.

The lines go to a sink: `kwstream serve` prints them to stderr; a library user gets them through
`logging` (logger ``kwstream.serve``) unless it passes its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable


class ServerLog:
    """``write("detection", client="127.0.0.1:5000", keyword="hey", ...)``: one line, flushed.

    Text: ``kwstream: 127.0.0.1:5000 detection keyword=hey ...``; JSON: ``{"time": epoch s,
    "event": "detection", "client": ..., ...}``, for journald or a log shipper.
    """

    def __init__(self, json_lines: bool = False, sink: Callable[[str], None] | None = None) -> None:
        self.json_lines = json_lines
        self._sink = sink or logging.getLogger("kwstream.serve").info
        self._lock = threading.Lock()

    def write(self, event: str, client: str | None = None, **fields: object) -> None:
        fields = {k: round(v, 3) if isinstance(v, float) else v for k, v in fields.items()}
        if self.json_lines:
            record = {"time": round(time.time(), 3), "event": event, **({"client": client} if client else {}), **fields}
            line = json.dumps(record)
        else:
            text = " ".join(f"{k}={v}" for k, v in fields.items())
            line = " ".join(x for x in ("kwstream:", client, event, text) if x)
        with self._lock:
            self._sink(line)
