"""``kwstream serve``: the Wyoming wake-word service for Home Assistant and voice satellites."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

from kwstream.cli import options
from kwstream.cli.exit_codes import EXIT_OK, EXIT_USER_ERROR
from kwstream.errors import KwstreamError
from kwstream.model.encoder import Encoder
from kwstream.serve.log import ServerLog
from kwstream.serve.server import ServeSettings, WakeService
from kwstream.spotter import SpotterSettings


def log_to_stderr(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")  # one write: a logging line from another thread cannot land inside it
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # nobody reads the log any more: serve on
        pass


class ServerLogHandler(logging.Handler):
    """``logging`` records (the model's resolution, ...) as lines of the server's log, so that with ``--json`` every
    line on stderr is one JSON object, as a log shipper expects."""

    def __init__(self, log: ServerLog) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.write("log", level=record.levelname.lower(), message=record.getMessage())


class StoppedStarting(BaseException):
    """SIGTERM before the server listens. Not an ``Exception``, so that no ``except Exception`` in the model's
    loading takes it for a failure to recover from."""


@contextlib.contextmanager
def stopped_by_sigterm(terminated: threading.Event) -> Iterator[None]:
    """While open, SIGTERM (systemd, ``timeout``, ``kill``) sets ``terminated`` and raises ``StoppedStarting``, cutting
    the model's loading (10-36 s with a classifier) short, so that the server ends with a log line and status 0 as it
    does once listening (and as ``listen`` ends: ``ended_by_sigterm``); the default action killed it without a word
    (143). The service's own handler takes over once it runs."""

    def stop(*_) -> None:
        terminated.set()
        raise StoppedStarting

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    # a bad --uri or limit is reported before the model loads
    serve = ServeSettings(uri=args.uri, max_clients=args.max_clients, workers=args.workers,
                          max_backlog_s=args.max_backlog_s, idle_timeout_s=args.idle_timeout)
    log = ServerLog(json_lines=args.json, sink=log_to_stderr)
    if args.json:
        logging.getLogger().handlers = [ServerLogHandler(log)]
    terminated = threading.Event()
    try:
        with stopped_by_sigterm(terminated):
            return serve_with(args, settings, serve, log, terminated)
    except BaseException as exc:
        if terminated.is_set():  # StoppedStarting, or what a loader made of it (pybind11's module init: an ImportError)
            log.write("stopped", reason="SIGTERM while starting")
            return EXIT_OK
        if not (args.json and isinstance(exc, KwstreamError)):
            raise
        log.write("log", level="error", message=str(exc))  # e.g. the address in use: with --json the log's last line
        return EXIT_USER_ERROR


def serve_with(args: argparse.Namespace, settings: SpotterSettings, serve: ServeSettings, log: ServerLog,
               terminated: threading.Event) -> int:
    encoder = Encoder(settings.encoder)
    keywords = options.keyword_set(args, encoder, settings, quiet=args.json)
    if args.json:
        for line in keywords.homophone_warnings:
            log.write("log", level="warning", message=line)
    service = WakeService(keywords, encoder, settings, serve, log)
    if terminated.is_set():  # a SIGTERM whose StoppedStarting something swallowed (a finaliser's "Exception ignored")
        raise StoppedStarting
    asyncio.run(service.run())
    return EXIT_OK
