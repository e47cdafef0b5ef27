"""``kwstream serve``: the Wyoming wake-word service for Home Assistant and voice satellites."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

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


def cmd_serve(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    # a bad --uri or limit is reported before the model loads
    serve = ServeSettings(uri=args.uri, max_clients=args.max_clients, workers=args.workers,
                          max_backlog_s=args.max_backlog_s, idle_timeout_s=args.idle_timeout)
    log = ServerLog(json_lines=args.json, sink=log_to_stderr)
    if args.json:
        logging.getLogger().handlers = [ServerLogHandler(log)]
    try:
        return serve_with(args, settings, serve, log)
    except KwstreamError as exc:  # e.g. the address in use: with --json the last line of the log, as JSON too
        if not args.json:
            raise
        log.write("log", level="error", message=str(exc))
        return EXIT_USER_ERROR


def serve_with(args: argparse.Namespace, settings: SpotterSettings, serve: ServeSettings, log: ServerLog) -> int:
    encoder = Encoder(settings.encoder)
    keywords = options.keyword_set(args, encoder, settings, quiet=args.json)
    if args.json:
        for line in keywords.homophone_warnings:
            log.write("log", level="warning", message=line)
    service = WakeService(keywords, encoder, settings, serve, log)
    asyncio.run(service.run())
    return EXIT_OK
