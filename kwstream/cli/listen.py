"""``kwstream listen``: spot keywords in the microphone or a recording, as text, JSON or a dashboard."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict

from kwstream.audio.sources import AudioSource
from kwstream.cli import options
from kwstream.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK
from kwstream.errors import KwstreamError
from kwstream.model.encoder import Encoder
from kwstream.spotter import Spotter, SpotterStats
from kwstream.stream.detector import Detection
from kwstream.stream.events import Level, ScoredWindow, VoiceActivity

log = logging.getLogger("kwstream")


def format_detection(d: Detection) -> str:
    minutes, seconds = divmod(d.detected_at, 60)
    return (
        f"[{int(minutes):02d}:{seconds:05.2f}] {d.keyword:<14} score {d.score:.2f}  "
        f"spoken {d.start:.2f}-{d.end:.2f} s  latency {d.latency:.2f} s"
    )


EVENT_TYPES = {Detection: "detection", Level: "level", VoiceActivity: "voice", ScoredWindow: "window"}


def _rounded(value: object, key: str = "") -> object:
    if isinstance(value, float) and key != "wall_time":
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def event_json(event: object) -> str:
    """One JSON line for a Detection or any other spotter event, with its ``type``."""
    record = {"type": EVENT_TYPES[type(event)], **asdict(event)}
    if isinstance(event, Detection):
        record["latency"] = event.latency
    if isinstance(event, ScoredWindow):  # the documented line: scores and alignments by keyword
        record["scores"] = {k: s.score for k, s in event.scores.items()}
        record["alignments"] = {k: (s.start, s.end) for k, s in event.scores.items()}
    return json.dumps(_rounded(record))


def summary(stats: SpotterStats) -> str:
    voiced = 100 * stats.voiced_s / stats.audio_s if stats.audio_s else 0.0
    text = (
        f"{stats.detections} detection(s) in {stats.audio_s:.1f} s of audio ({voiced:.0f}% voiced, "
        f"{stats.windows} windows, real-time factor {stats.real_time_factor:.3f})"
    )
    losses = [
        f"{stats.overrun_samples} samples lost to overrun" if stats.overrun_samples else "",
        f"{stats.dropped_frames} input overflows" if stats.dropped_frames else "",
        f"{stats.window_errors} failed windows" if stats.window_errors else "",
        f"{stats.callback_errors} callback errors" if stats.callback_errors else "",
    ]
    return "; ".join([text] + [x for x in losses if x])


@contextlib.contextmanager
def ended_by_sigterm(source: AudioSource) -> Iterator[threading.Event]:
    """While open, SIGTERM (systemd, ``timeout``, ``kill``) ends listening as the end of the input does: the summary,
    then exit 0, as ``kwstream serve`` ends (its default action killed the listener without a word, exit 143). The event
    tells the dashboard, which outlives its input until ``q``."""
    ending = threading.Event()

    def end(*_) -> None:
        ending.set()
        source.stop()

    if threading.current_thread() is not threading.main_thread():  # only the main thread may handle signals
        yield ending
        return
    previous = signal.signal(signal.SIGTERM, end)
    try:
        yield ending
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_listen(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    source = options.source(args)
    if args.events and not args.json:
        raise KwstreamError("--events needs --json")
    if args.dashboard and args.json:
        raise KwstreamError("--dashboard and --json cannot be combined: choose the live view or JSON lines")
    encoder = Encoder(settings.encoder)
    keywords = options.keyword_set(args, encoder, settings)

    def make(on_detect=None, on_event=None) -> Spotter:
        return Spotter(keywords, on_detect, source=source, settings=settings, encoder=encoder, on_event=on_event)

    if args.dashboard:
        from kwstream.cli.dashboard import DashboardState, dashboard_unavailable, run_dashboard

        reason = dashboard_unavailable(len(keywords.names))
        if reason is None:
            state = DashboardState(keywords.names)
            spotter = make(on_event=state.apply)
            spotter.start()
            with ended_by_sigterm(source) as ending:
                return run_dashboard(spotter, source, state, ending)
        print(f"kwstream: no dashboard: {reason}; printing detections line by line", file=sys.stderr, flush=True)
    emit = event_json if args.json else format_detection

    def output(item: object) -> None:
        try:
            print(emit(item), flush=True)
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly
            sys.stdout = open(os.devnull, "w")
            source.stop()

    spotter = make(on_event=output) if args.events else make(output)
    spotter.start()
    log.info("model %s (%.1f M parameters) on %s", encoder.name, encoder.parameters / 1e6, settings.encoder.device)
    # one write: print() writes the line and its newline apart, and the source's thread may log in between
    sys.stderr.write(
        f"kwstream: listening to {source.name} for {', '.join(keywords.names)}"
        + ("" if args.file else " (Ctrl-C to stop)") + "\n"
    )
    sys.stderr.flush()
    interrupted = False
    try:
        with ended_by_sigterm(source):
            while not spotter.wait(timeout=0.2):
                pass
    except KeyboardInterrupt:
        interrupted = True
    spotter.stop()
    print(f"kwstream: {summary(spotter.stats)}", file=sys.stderr)
    status = options.input_status(source, EXIT_INTERRUPTED if interrupted else EXIT_OK)
    if source.stalled:  # a normal exit would wait for ever on PortAudio's thread, stuck in the device
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
