"""The wake-word service: one loaded model and keyword set, a scheduler, and a Wyoming server around them.

```python
service = WakeService(keywords, encoder, pipeline_settings, ServeSettings(uri="tcp://0.0.0.0:10400"))
asyncio.run(service.run())        # until SIGTERM / SIGINT or service.stop()
```
"""

from __future__ import annotations

import asyncio
import errno
import importlib.metadata
import itertools
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from wyoming.info import Attribution, Info, WakeModel, WakeProgram
from wyoming.server import AsyncServer, AsyncUnixServer, HandlerFactory

from kwstream.errors import KwstreamError
from kwstream.keywords.ctc import CtcKeywordScorer
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder
from kwstream.serve.handler import WakeHandler
from kwstream.serve.log import ServerLog
from kwstream.serve.scheduler import ModelScheduler
from kwstream.serve.settings import ServeSettings
from kwstream.stream.pipeline import PipelineSettings

ATTRIBUTION = Attribution(name="kwstream", url="")
"""Who made the program and its keywords (the project has no public address to give)."""
STOP_WAIT_S = 2.0
"""How long a stopping server waits for its connections' handlers to end."""
STOP_WAIT_STEPS = 40
TYPED_LANGUAGES = ["en"]
"""Typed keywords are spelt for the English character models kwstream runs."""


def package_version() -> str | None:
    try:
        return importlib.metadata.version("kwstream")
    except importlib.metadata.PackageNotFoundError:
        return None


def wake_info(keywords: KeywordSet, version: str | None) -> Info:
    """The ``info`` answer: one wake program whose models are the served keywords."""
    typed = {k for scorer in keywords.scorers if isinstance(scorer, CtcKeywordScorer) for k in scorer.keywords}
    models = [
        WakeModel(name=name, phrase=name, attribution=ATTRIBUTION, installed=True, version=version,
                  description=f"{'typed' if name in typed else 'enrolled or trained'} keyword, threshold {keywords.thresholds[name]:.2f}",
                  languages=TYPED_LANGUAGES if name in typed else [])
        for name in keywords.names
    ]
    program = WakeProgram(name="kwstream", attribution=ATTRIBUTION, installed=True, version=version,
                          description="kwstream: any typed or enrolled keyword, with a wav2vec2 CTC model", models=models)
    return Info(wake=[program])


def answers(path: Path) -> bool:
    """Whether a server listens on the Unix socket at ``path`` (the file a dead one left refuses)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        code = probe.connect_ex(str(path))
    if code in (errno.ECONNREFUSED, errno.ENOENT):
        return False
    if code in (0, errno.EAGAIN):  # EAGAIN: it listens, its backlog full
        return True
    raise OSError(code, os.strerror(code))


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino)


class UnixServer(AsyncUnixServer):
    """wyoming's Unix socket server without its two ways of taking another server's socket: it unlinked the path
    before binding while a live server listened there (which then had no clients, and lost its file when the
    newcomer stopped), and it unlinks the path at stop even where another server has bound it since."""

    def __init__(self, socket_path: str | Path) -> None:
        super().__init__(socket_path)
        self._bound: tuple[int, int] | None = None
        """The device and inode of the socket file this server created."""

    async def start(self, handler_factory: HandlerFactory) -> None:
        if self.socket_path.exists() and not self.socket_path.is_socket():
            raise OSError(errno.EEXIST, f"{self.socket_path} exists and is not a socket")
        if answers(self.socket_path):
            raise OSError(errno.EADDRINUSE, "address already in use (a server answers there)")
        await super().start(handler_factory)  # replaces a stale socket file
        self._bound = file_identity(self.socket_path)

    async def stop(self) -> None:
        await AsyncServer.stop(self)  # the handlers; AsyncUnixServer.stop would unlink the path whoever owns it
        if self._server is not None:
            self._server.close()
        if self._bound is not None and file_identity(self.socket_path) == self._bound:
            self.socket_path.unlink(missing_ok=True)


def listener(uri: str) -> AsyncServer:
    """wyoming's server for ``uri`` (``UnixServer`` for a Unix socket)."""
    server = AsyncServer.from_uri(uri)
    return UnixServer(server.socket_path) if isinstance(server, AsyncUnixServer) else server


class WakeService:
    """Everything the connections share: the model, the keywords, the scheduler, the log."""

    def __init__(self, keywords: KeywordSet, encoder: Encoder, pipeline_settings: PipelineSettings,
                 settings: ServeSettings = ServeSettings(), log: ServerLog | None = None) -> None:
        self.keywords = keywords
        self.keyword_names = list(keywords.names)
        self.encoder = encoder
        self.pipeline_settings = pipeline_settings
        self.settings = settings
        self.log = log or ServerLog()
        self.info = wake_info(keywords, package_version())
        self.scheduler: ModelScheduler | None = None
        self._handlers: set[WakeHandler] = set()
        self._ids = itertools.count(1)
        self._stopping: asyncio.Event | None = None

    @property
    def clients(self) -> int:
        return len(self._handlers)

    def next_id(self) -> int:
        return next(self._ids)

    def admit(self, handler: WakeHandler) -> bool:
        if len(self._handlers) >= self.settings.max_clients:
            return False
        self._handlers.add(handler)
        return True

    def release(self, handler: WakeHandler) -> None:
        self._handlers.discard(handler)

    def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> WakeHandler:
        return WakeHandler(reader, writer, self)

    def stop(self) -> None:
        """Stop serving (from the event loop's thread, e.g. a signal handler)."""
        if self._stopping is not None:
            self._stopping.set()

    async def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until SIGTERM, SIGINT or ``stop()``; then close every connection and the workers."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.scheduler = ModelScheduler(self.settings.workers)
        server = listener(self.settings.uri)
        try:
            await server.start(self.handler)
        except OSError as exc:
            self.scheduler.close()
            raise KwstreamError(f"cannot listen on {self.settings.uri}: {exc.strerror or exc}") from None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        self.log.write("listening", uri=self.settings.uri, keywords=",".join(self.keyword_names),
                       model=self.encoder.name, max_clients=self.settings.max_clients, workers=self.settings.workers)
        if on_ready:
            on_ready()
        try:
            await self._stopping.wait()
        finally:
            try:
                await self._shut_down(server)
            finally:
                # only now: a second signal during the shutdown (supervisors send SIGTERM again, users press Ctrl-C
                # twice) calls stop() once more and is absorbed; the default actions ended the server mid-way, with no
                # "stopped" line (SIGTERM: status 143, SIGINT: 130)
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    async def _shut_down(self, server: AsyncServer) -> None:
        """Close every connection, give their handlers ``STOP_WAIT_S`` to end, stop the workers; logged at its start
        ("stopping", with the connections still open: a slow one keeps it waiting) and at its end ("stopped")."""
        self.log.write("stopping", clients=self.clients)
        await server.stop()
        for _ in range(STOP_WAIT_STEPS):  # let the handlers' tasks see their closed streams and end
            if not self._handlers:
                break
            await asyncio.sleep(STOP_WAIT_S / STOP_WAIT_STEPS)
        self.scheduler.close()
        self.log.write("stopped", clients=self.clients)
