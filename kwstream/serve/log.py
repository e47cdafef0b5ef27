"""The server's log: one line per connection, stream and detection, as text or JSON lines (stderr)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TextIO


class ServerLog:
    """``write("detection", client="127.0.0.1:5000", keyword="hey", ...)``: one line, flushed.

    Text: ``kwstream: 127.0.0.1:5000 detection keyword=hey ...``; JSON: ``{"time": epoch s,
    "event": "detection", "client": ..., ...}``, for journald or a log shipper.
    """

    def __init__(self, json_lines: bool = False, stream: TextIO | None = None) -> None:
        self.json_lines = json_lines
        self._stream = stream
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
            stream = self._stream or sys.stderr
            try:
                print(line, file=stream, flush=True)
            except (BrokenPipeError, ValueError):  # nobody reads the log any more: serve on
                pass
