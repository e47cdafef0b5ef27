"""`kwstream listen --dashboard`: a live full-screen view of what the spotter hears and decides.

Threads: the spotter's dispatcher thread, not its worker, calls ``DashboardState.apply`` (a few
list and dict updates under a lock), so the dashboard never blocks detection; the main thread reads
keys, renders the state at ``REFRESH_HZ`` (about 5 ms a frame, which the worker's Python code shares
the GIL with) and drives the spotter (pause, thresholds). ``render`` is a pure
function of the state, so tests render recorded event sequences without a terminal.

When a replay ends the dashboard stays, marked ENDED, until ``q``, so the last scores and
detections can be read; without a terminal on stdin (no keys) it exits when the stream ends.
"""

from __future__ import annotations

import logging
import math
import os
import select
import shlex
import sys
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TextIO

import numpy as np
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.layout import Layout
from rich.live import Live
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kwstream.audio.io import SAMPLE_RATE
from kwstream.audio.sources import AudioSource
from kwstream.cli import options
from kwstream.cli.exit_codes import EXIT_INTERRUPTED
from kwstream.stream.detector import Detection
from kwstream.stream.events import SILENCE_DBFS, Level, ScoredWindow, VoiceActivity
from kwstream.spotter import Spotter, SpotterStats

REFRESH_HZ = 15
"""Frames per second: smooth meters at little CPU cost."""
FRAME_S = 1 / REFRESH_HZ
PEAK_HOLD_S = 1.5
"""Stream seconds a peak stays marked on the meter unless a higher one replaces it."""
CLIP_WARNING_S = 2.0
"""Stream seconds the clipping warning stays after the last clipped block."""
METER_FLOOR_DBFS = -60.0
"""Level at the meter's left end; anything quieter shows empty."""
METER_CELLS = 20
HOT_DBFS = -1.0
"""A held peak above this is drawn red: at or near clipping."""
BAR_CELLS = 20
"""Cells of a score bar: one cell per THRESHOLD_STEP, so each +/- moves the mark one cell."""
SCORE_HOLD_S = 1.0
"""Stream seconds a window's score stays on the bar; voiced audio is scored every hop (0.25 s)."""
SPARK_SPAN_S = 5.0
"""Stream seconds of score history in a sparkline."""
SPARK_CELLS = 20
"""Sparkline cells at full width (a quarter second each, the default hop)."""
SPARK_MIN_CELLS = 4
KEYWORD_MAX_CELLS = 16
CELL_ROUNDING_DIGITS = 6
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
NO_WINDOW = " "
"""Sparkline cell where no window was scored (silence or paused)."""
LOG_SIZE = 30
"""Detections kept for the log panel (newest first; as many show as the terminal has rows for)."""
RECENT_WINDOWS = 50
"""Windows whose compute time the median is taken over."""
RECENT_DETECTIONS = 100
"""Detections whose latency the median and p95 are taken over."""
LATENCY_PERCENTILE = 95
THRESHOLD_STEP = 0.05
THRESHOLD_DECIMALS = 2
HELD_LOG_RECORDS = 100
"""Log records kept while the screen is taken, replayed on stderr on exit."""
MIN_COLS = 60
"""Narrowest terminal where the score bar and the log rows fit unbroken."""
LINE_ROWS = 1
"""The header (status) and the footer (keys, log messages)."""
INPUT_ROWS = 5
ENGINE_ROWS = 3
LOG_MIN_ROWS = 5
"""Borders, table header and two detections."""
KEYWORD_CHROME_ROWS = 3
"""Panel borders and the table header around the keyword rows."""
FIXED_ROWS = 2 * LINE_ROWS + INPUT_ROWS + KEYWORD_CHROME_ROWS + LOG_MIN_ROWS + ENGINE_ROWS
"""Rows of everything but the keyword rows (18: 20 rows for two keywords)."""


def min_rows(keywords: int) -> int:
    """Terminal rows the layout needs for this many keywords."""
    return FIXED_ROWS + keywords


# -- state, fed by the spotter's dispatcher thread ---------------------------------------------


@dataclass
class DashboardState:
    """What the dashboard shows from events; ``apply`` is safe from any thread. Totals (RTF,
    voiced share, losses) come from SpotterStats instead, so they match `listen`'s summary."""

    keywords: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    stream_s: float = 0.0
    """Stream time of the newest Level (the dashboard's clock)."""
    rms_dbfs: float = SILENCE_DBFS
    held_peak_dbfs: float = SILENCE_DBFS
    held_at_s: float = 0.0
    last_clip_s: float | None = None
    voiced: bool = False
    history: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    """Per keyword, (window end, score) of the windows of the last SPARK_SPAN_S."""
    counts: dict[str, int] = field(default_factory=dict)
    detections: deque[Detection] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))
    compute_s: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_WINDOWS))
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_DETECTIONS))
    note: str = ""
    """The latest log message (warnings would otherwise scroll through the screen)."""

    def __post_init__(self) -> None:
        for keyword in self.keywords:
            self.history[keyword] = deque()
            self.counts[keyword] = 0

    def apply(self, event: object) -> None:
        """Record one spotter event (``Spotter(on_event=state.apply)``)."""
        with self.lock:
            if isinstance(event, Level):
                self._level(event)
            elif isinstance(event, VoiceActivity):
                self.voiced = event.voiced
            elif isinstance(event, ScoredWindow):
                self._window(event)
            elif isinstance(event, Detection):
                self.counts[event.keyword] += 1
                self.detections.append(event)
                self.latencies_s.append(event.latency)

    def _level(self, level: Level) -> None:
        self.stream_s = level.time_s
        self.rms_dbfs = level.rms_dbfs
        if level.peak_dbfs >= self.held_peak_dbfs or level.time_s - self.held_at_s > PEAK_HOLD_S:
            self.held_peak_dbfs, self.held_at_s = level.peak_dbfs, level.time_s
        if level.clipped:
            self.last_clip_s = level.time_s
        cutoff = level.time_s - SPARK_SPAN_S
        for history in self.history.values():
            while history and history[0][0] < cutoff:
                history.popleft()

    def _window(self, window: ScoredWindow) -> None:
        self.compute_s.append(window.compute_s)
        for keyword, score in window.scores.items():
            self.history[keyword].append((window.end_s, score.score))

    def score(self, keyword: str) -> float:
        """The keyword's score in the newest window, or 0 once no window was scored for a while
        (silence, pause)."""
        history = self.history[keyword]
        return history[-1][1] if history and history[-1][0] >= self.stream_s - SCORE_HOLD_S else 0.0

    @property
    def clipping(self) -> bool:
        return self.last_clip_s is not None and self.stream_s - self.last_clip_s <= CLIP_WARNING_S


@dataclass(frozen=True)
class Setup:
    """What the dashboard shows that no event carries: where the audio and the model are."""

    source: str
    sample_rate: int
    model: str
    device: str


@dataclass
class Controls:
    """The user's live choices, changed by keys on the main thread."""

    thresholds: dict[str, float]
    selected: int = 0
    paused: bool = False
    ended: bool = False


# -- rendering (pure) --------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


def _cell(fraction: float, cells: int) -> int:
    """The cell a fraction in [0, 1] falls in; float noise is rounded off first, so that a threshold
    of k steps always marks cell k."""
    return min(math.floor(round(fraction * cells, CELL_ROUNDING_DIGITS)), cells - 1)


def meter(rms_dbfs: float, held_dbfs: float, cells: int = METER_CELLS) -> Text:
    """RMS as a filled bar from METER_FLOOR_DBFS to 0 dBFS, the held peak as a ``│``."""
    to_fraction = lambda dbfs: min(1.0, max(0.0, 1 - dbfs / METER_FLOOR_DBFS))
    filled = round(to_fraction(rms_dbfs) * cells)
    hold = _cell(to_fraction(held_dbfs), cells) if held_dbfs > METER_FLOOR_DBFS else None
    text = Text()
    for i in range(cells):
        if i == hold:
            text.append("│", style="bold red" if held_dbfs > HOT_DBFS else "bold yellow")
        elif i < filled:
            text.append("█", style="green")
        else:
            text.append("░", style="dim")
    return text


def score_bar(score: float, threshold: float, cells: int = BAR_CELLS) -> Text:
    """The score as a filled bar with a ``|`` in the threshold's cell."""
    filled = round(score * cells)
    mark = _cell(threshold, cells)
    fill_style = "bold green" if score >= threshold else "cyan"
    text = Text()
    for i in range(cells):
        if i == mark:
            text.append("|", style="bold yellow")
        else:
            text.append("█" if i < filled else "░", style=fill_style if i < filled else "dim")
    return text


def sparkline(history: deque[tuple[float, float]], now_s: float, cells: int = SPARK_CELLS) -> str:
    """The highest score per time cell over the last SPARK_SPAN_S, newest on the right."""
    best: list[float | None] = [None] * cells
    start = now_s - SPARK_SPAN_S
    for end_s, score in history:
        i = _cell((end_s - start) / SPARK_SPAN_S, cells) if end_s >= start else None
        if i is not None and (best[i] is None or score > best[i]):
            best[i] = score
    return "".join(NO_WINDOW if s is None else SPARK_BLOCKS[_cell(s, len(SPARK_BLOCKS))] for s in best)


@dataclass(frozen=True)
class Sparkline:
    """A sparkline that drops its oldest cells, not its newest, when the table is narrow."""

    cells: str

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(SPARK_MIN_CELLS, len(self.cells))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.cells[-options.max_width:], style="magenta", no_wrap=True)


def _line(*parts: str | tuple[str, str] | Text) -> Text:
    text = Text.assemble(*parts, no_wrap=True)
    text.overflow = "ellipsis"
    return text


def _input_panel(state: DashboardState, setup: Setup, stats: SpotterStats) -> Panel:
    overrun_s = stats.overrun_samples / SAMPLE_RATE
    losses = _line(
        f"{setup.sample_rate} Hz  dropped frames ",
        (str(stats.dropped_frames), "bold red" if stats.dropped_frames else ""),
        "  overrun ",
        (f"{overrun_s:.2f} s", "bold red" if stats.overrun_samples else ""),
    )
    level = _line(
        meter(state.rms_dbfs, state.held_peak_dbfs),
        f" {state.rms_dbfs:.1f} dBFS  peak hold {state.held_peak_dbfs:.1f}",
        ("  CLIP!" if state.clipping else "", "bold white on red"),
    )
    share = 100 * stats.voiced_s / stats.audio_s if stats.audio_s else 0.0
    vad = _line(
        "VAD ",
        ("● voiced" if state.voiced else "○ silent", "bold green" if state.voiced else "dim"),
        f"   voiced {share:.0f}% of {stats.audio_s:.1f} s",
    )
    return Panel(Group(losses, level, vad), title=f"Input: {setup.source}", title_align="left")


def _keyword_panel(state: DashboardState, controls: Controls) -> Panel:
    table = Table(box=None, padding=(0, 1), pad_edge=False, expand=True, header_style="bold")
    table.add_column("", width=1)
    table.add_column("keyword", no_wrap=True, overflow="ellipsis", max_width=KEYWORD_MAX_CELLS)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("bar, | = thr", no_wrap=True, min_width=BAR_CELLS)
    table.add_column("thr", justify="right", no_wrap=True)
    table.add_column(f"last {SPARK_SPAN_S:.0f} s", no_wrap=True, ratio=1)
    table.add_column("hits", justify="right", no_wrap=True)
    for i, keyword in enumerate(state.keywords):
        selected = i == controls.selected
        score, threshold = state.score(keyword), controls.thresholds[keyword]
        table.add_row(
            "▶" if selected else "",
            keyword,
            f"{score:.2f}",
            score_bar(score, threshold),
            f"{threshold:.2f}",
            Sparkline(sparkline(state.history[keyword], state.stream_s)),
            str(state.counts[keyword]),
            style="reverse" if selected else "",
        )
    return Panel(table, title="Keywords", title_align="left")


def _log_panel(state: DashboardState) -> Panel:
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    for column, justify in (("time", "left"), ("stream", "right"), ("keyword", "left"), ("score", "right"), ("latency", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    for d in reversed(state.detections):
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(d.wall_time)), _clock(d.detected_at), d.keyword,
            f"{d.score:.2f}", f"{d.latency:.2f} s",
        )
    return Panel(table, title="Detections, newest first", title_align="left")


def _engine_panel(state: DashboardState, setup: Setup, stats: SpotterStats) -> Panel:
    window_ms = 1000 * float(np.median(state.compute_s)) if state.compute_s else 0.0
    if state.latencies_s:
        latency = f"{np.median(state.latencies_s):.2f} s  p{LATENCY_PERCENTILE} {np.percentile(state.latencies_s, LATENCY_PERCENTILE):.2f} s"
    else:
        latency = "-"
    body = _line(f"RTF {stats.real_time_factor:.3f}  window {window_ms:.1f} ms  latency med {latency}")
    return Panel(body, title=f"Engine: {setup.model} on {setup.device}", title_align="left")


def _header(state: DashboardState, controls: Controls) -> Text:
    status = [("■ ENDED", "bold blue") if controls.ended else ("● LIVE", "bold green")]
    if controls.paused:
        status.append(("  ⏸ PAUSED", "bold black on yellow"))
    return _line(("kwstream ", "bold"), f"listening for {', '.join(state.keywords)}  ", *status)


def _footer(state: DashboardState, controls: Controls) -> Text:
    if state.note:
        return _line(("log: ", "bold yellow"), state.note)
    keys = "q quit  p pause  ↑↓/tab select  +/- threshold"
    return _line((keys + ("  (stream ended)" if controls.ended else ""), "dim"))


@dataclass(frozen=True)
class _SizeGuard:
    """The layout, or a one-line notice when the terminal is too small for it."""

    layout: Layout
    rows: int

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, height = options.max_width, options.height or console.height
        if width < MIN_COLS or height < self.rows:
            yield Text(f"terminal too small ({width}x{height}): the dashboard needs {MIN_COLS}x{self.rows}")
        else:
            yield self.layout


def render(state: DashboardState, setup: Setup, controls: Controls, stats: SpotterStats) -> RenderableType:
    """The whole screen for the current state; call with ``state.lock`` held if events still arrive."""
    layout = Layout()
    layout.split_column(
        Layout(_header(state, controls), size=LINE_ROWS),
        Layout(_input_panel(state, setup, stats), size=INPUT_ROWS),
        Layout(_keyword_panel(state, controls), size=len(state.keywords) + KEYWORD_CHROME_ROWS),
        Layout(_log_panel(state), ratio=1, minimum_size=LOG_MIN_ROWS),
        Layout(_engine_panel(state, setup, stats), size=ENGINE_ROWS),
        Layout(_footer(state, controls), size=LINE_ROWS),
    )
    return _SizeGuard(layout, min_rows(len(state.keywords)))


# -- terminal ----------------------------------------------------------------------------------


class Key(Enum):
    QUIT = "quit"
    PAUSE = "pause"
    NEXT = "next"
    PREVIOUS = "previous"
    RAISE = "raise"
    LOWER = "lower"


KEY_BYTES = {
    b"q": Key.QUIT, b"Q": Key.QUIT,
    b"p": Key.PAUSE, b"P": Key.PAUSE,
    b"\t": Key.NEXT, b"\x1b[B": Key.NEXT, b"\x1bOB": Key.NEXT,
    b"\x1b[Z": Key.PREVIOUS, b"\x1b[A": Key.PREVIOUS, b"\x1bOA": Key.PREVIOUS,
    b"+": Key.RAISE, b"=": Key.RAISE,
    b"-": Key.LOWER, b"_": Key.LOWER,
}
"""Keys and the bytes terminals send for them (arrows in normal and application cursor mode)."""
_LONGEST_FIRST = sorted(KEY_BYTES, key=len, reverse=True)
READ_BYTES = 64


def parse_keys(data: bytes) -> list[Key]:
    """The keys in a burst of terminal input; unknown bytes are skipped."""
    keys, i = [], 0
    while i < len(data):
        match = next((seq for seq in _LONGEST_FIRST if data.startswith(seq, i)), None)
        if match is None:
            i += 1
        else:
            keys.append(KEY_BYTES[match])
            i += len(match)
    return keys


class KeyReader:
    """Single key presses from a terminal in cbreak mode (no echo, no line buffering; Ctrl-C
    still interrupts). ``close`` restores the terminal's mode."""

    def __init__(self, stream: TextIO) -> None:
        self.fd = stream.fileno()
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)

    def read(self, timeout_s: float) -> list[Key]:
        """Keys pressed so far, waiting at most ``timeout_s`` for the first."""
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        return parse_keys(os.read(self.fd, READ_BYTES)) if ready else []

    def close(self) -> None:
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


class _HoldingHandler(logging.Handler):
    """Keeps log records (and shows the latest) while the dashboard owns the screen."""

    def __init__(self, state: DashboardState) -> None:
        super().__init__()
        self.state = state
        self.records: deque[logging.LogRecord] = deque(maxlen=HELD_LOG_RECORDS)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        with self.state.lock:
            self.state.note = record.getMessage()


@contextmanager
def _logs_held(state: DashboardState) -> Iterator[None]:
    """Route log records to the dashboard, then replay them to the usual handlers on exit."""
    root = logging.getLogger()
    saved = root.handlers[:]
    holder = _HoldingHandler(state)
    root.handlers = [holder]
    try:
        yield
    finally:
        root.handlers = saved
        for record in holder.records:
            for handler in saved:
                if record.levelno >= handler.level:
                    handler.handle(record)


def dashboard_unavailable(keywords: int, stream: TextIO | None = None) -> str | None:
    """Why the dashboard cannot run on ``stream`` (default stdout), or None if it can."""
    stream = stream or sys.stdout
    if not stream.isatty():
        return "stdout is not a terminal"
    size = os.get_terminal_size(stream.fileno())
    rows = min_rows(keywords)
    if size.columns < MIN_COLS or size.lines < rows:
        return f"the terminal ({size.columns}x{size.lines}) is smaller than the dashboard needs ({MIN_COLS}x{rows})"
    return None


def keywords_option(thresholds: dict[str, float]) -> str:
    """The thresholds as a ``--keywords`` argument, ready to paste into the next run."""
    spec = ",".join(f"{keyword}:{threshold:.{THRESHOLD_DECIMALS}f}" for keyword, threshold in thresholds.items())
    return f"--keywords {shlex.quote(spec)}"


def _model_label(name: str) -> str:
    """A local model directory by its last component; a hub id as it is."""
    return Path(name).name if Path(name).exists() else name


def _handle(key: Key, spotter: Spotter, controls: Controls) -> None:
    keywords = spotter.keywords
    if key is Key.PAUSE:
        if spotter.paused:
            spotter.resume()
        else:
            spotter.pause()
    elif key in (Key.NEXT, Key.PREVIOUS):
        step = 1 if key is Key.NEXT else -1
        controls.selected = (controls.selected + step) % len(keywords)
    elif key in (Key.RAISE, Key.LOWER):
        keyword = keywords[controls.selected]
        step = THRESHOLD_STEP if key is Key.RAISE else -THRESHOLD_STEP
        threshold = round(min(1.0, max(0.0, spotter.thresholds[keyword] + step)), THRESHOLD_DECIMALS)
        spotter.set_threshold(keyword, threshold)


def run_dashboard(spotter: Spotter, source: AudioSource, state: DashboardState, ending: threading.Event | None = None,
                  console: Console | None = None) -> int:
    """Show the dashboard of a started spotter until ``q``, Ctrl-C, ``ending`` (SIGTERM) or (without keys) the stream's
    end; then stop the spotter and print the final thresholds. Returns the exit status."""
    console = console or Console()
    ending = ending or threading.Event()
    setup = Setup(source.name, getattr(source, "sample_rate", SAMPLE_RATE), _model_label(spotter.encoder.name), str(spotter.encoder.device))
    controls = Controls(spotter.thresholds)
    status = 0
    keys = KeyReader(sys.stdin) if sys.stdin.isatty() else None
    try:
        with _logs_held(state), Live(console=console, screen=True, auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as live:
            while True:
                if keys is not None:
                    pressed = keys.read(FRAME_S)
                else:
                    pressed = []
                    time.sleep(FRAME_S)
                if Key.QUIT in pressed or ending.is_set():
                    break
                for key in pressed:
                    _handle(key, spotter, controls)
                controls.paused, controls.ended = spotter.paused, spotter.wait(0)
                with state.lock:  # render copies what it shows; drawing happens after
                    view = render(state, setup, controls, spotter.stats)
                live.update(view, refresh=True)
                if controls.ended and keys is None:
                    break
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    finally:
        if keys is not None:
            keys.close()
    spotter.stop()
    counts = ", ".join(f"{keyword} {count}" for keyword, count in state.counts.items())
    stats = spotter.stats
    paused = f", {stats.paused_s:.1f} s of it paused: not searched" if stats.paused_s else ""
    print(f"kwstream: {stats.detections} detection(s) in {stats.audio_s:.1f} s of audio ({counts}{paused}), "
          f"real-time factor {stats.real_time_factor:.3f}", file=sys.stderr)
    print(keywords_option(spotter.thresholds), flush=True)
    return options.input_status(source, status)
