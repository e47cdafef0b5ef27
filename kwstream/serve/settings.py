"""The service's settings, apart from the server so that the command line reads them without importing wyoming."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from kwstream.errors import KwstreamError

DEFAULT_URI = "tcp://0.0.0.0:10400"
"""Wyoming's usual wake-word port (wyoming-openwakeword's)."""


@dataclass(frozen=True)
class ServeSettings:
    """How the service listens and how much each connection may take."""

    uri: str = DEFAULT_URI
    """``tcp://HOST:PORT`` or ``unix://PATH``."""
    max_clients: int = 16
    """Connections served at once; another one is answered with an ``error`` event and closed."""
    workers: int = 1
    """Threads that run the model (each turn one connection's audio); more help on many cores."""
    max_backlog_s: float = 10.0
    """Audio a connection may have waiting for the model before the server stops reading from it."""

    def __post_init__(self) -> None:
        check_uri(self.uri)
        if self.max_clients < 1 or self.workers < 1:
            raise KwstreamError("--max-clients and --workers must be at least 1")
        if self.max_backlog_s <= 0:
            raise KwstreamError("the backlog limit must be positive")


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
