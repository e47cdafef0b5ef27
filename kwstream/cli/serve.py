"""``kwstream serve``: the Wyoming wake-word service for Home Assistant and voice satellites."""

from __future__ import annotations

import argparse
import asyncio

from kwstream.cli import options
from kwstream.cli.exit_codes import EXIT_OK
from kwstream.model.encoder import Encoder
from kwstream.serve.log import ServerLog
from kwstream.serve.server import ServeSettings, WakeService


def cmd_serve(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    serve = ServeSettings(uri=args.uri, max_clients=args.max_clients, workers=args.workers,
                          max_backlog_s=args.max_backlog_s)  # a bad --uri is reported before the model loads
    encoder = Encoder(settings.encoder)
    keywords = options.keyword_set(args, encoder, settings)
    service = WakeService(keywords, encoder, settings, serve, ServerLog(json_lines=args.json))
    asyncio.run(service.run())
    return EXIT_OK
