"""The service's settings, apart from the server so that the command line reads them without importing wyoming."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from urllib.parse import urlparse

from kwstream.errors import KwstreamError

DEFAULT_URI = "tcp://0.0.0.0:10400"
"""Wyoming's usual wake-word port (wyoming-openwakeword's)."""
MAX_PAYLOAD_BYTES = 4 << 20
"""4 MiB: more than a second of 8-channel 32-bit audio at 96 kHz in one chunk (Home Assistant and
wyoming-satellite send 1024 samples of 16 kHz 16-bit mono, 2 KiB)."""
MAX_WORKERS = 8 * (os.cpu_count() or 1)
"""A worker keeps a core busy running the model, so more than the cores only take turns on them; this bound only
refuses the absurd (a million threads never finish starting), leaving room for a machine whose cores change."""
IDLE_TIMEOUT_S = 300.0
"""wyoming-satellite keeps its wake connection open and sends it no audio while a pipeline runs (a
long spoken answer can pass a minute); it reconnects when the connection closes, but with a warning."""


@dataclass(frozen=True)
class ServeSettings:
    """How the service listens and how much each connection may take."""

    uri: str = DEFAULT_URI
    """``tcp://HOST:PORT`` or ``unix://PATH``."""
    max_clients: int = 16
    """Connections served at once; another one is answered with an ``error`` event and closed."""
    workers: int = 1
    """Threads that run the model (each turn one connection's audio); more help on many cores, up to ``MAX_WORKERS``."""
    max_backlog_s: float = 10.0
    """Audio a connection may have waiting for the model before the server stops reading from it."""
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    """Largest ``payload_length`` or ``data_length`` an event may announce; a larger one is refused
    before it is read, and the connection closed."""
    idle_timeout_s: float = IDLE_TIMEOUT_S
    """A connection that sends no event for this long while the server owes it nothing is closed (0: never)."""

    def __post_init__(self) -> None:
        check_uri(self.uri)
        if self.max_clients < 1:
            raise KwstreamError("--max-clients must be at least 1")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise KwstreamError(f"--workers must be 1-{MAX_WORKERS} (8 per core of this machine), got {self.workers}")
        # NaN passes every comparison, so it would switch off the backlog throttle and the chunk size cap
        if not (math.isfinite(self.max_backlog_s) and self.max_backlog_s > 0):
            raise KwstreamError(f"--max-backlog-s must be a finite number of seconds over 0, got {self.max_backlog_s:g}")
        if self.max_payload_bytes < 1:
            raise KwstreamError("the payload limit must be positive")
        if not (math.isfinite(self.idle_timeout_s) and self.idle_timeout_s >= 0):
            raise KwstreamError(f"--idle-timeout must be a number of seconds, 0 or more (0: never), got {self.idle_timeout_s:g}")


def check_uri(uri: str) -> None:
    """A user's mistake in ``--uri`` as one clear line."""
    parsed = urlparse(uri)
    if parsed.scheme == "unix" and parsed.path:
        return
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if parsed.hostname and port is not None:
            return
    raise KwstreamError(f"--uri must be tcp://HOST:PORT or unix://PATH, got {uri!r}")
