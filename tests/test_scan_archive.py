"""``kwstream scan`` with the archive windows (``PipelineSettings.archive``: a long hop, for speed)
gives the detections of ``listen --file`` run with the same ``--window-ms``/``--hop-ms``/
``--smoothing-windows`` flags, on the bundled recordings with the bundled model; scan's defaults are
listen's; a hop the window cannot hold ends with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kwstream.assets import DEMO_AUDIO
from kwstream.cli.exit_codes import EXIT_OK, EXIT_USER_ERROR
from kwstream.cli.main import main
from kwstream.model.resolve import BUNDLED_MODEL_DIR
from kwstream.stream.pipeline import PipelineSettings

ASSETS = DEMO_AUDIO.parent
KEYWORDS = "hey,stop,zero,three,seven,nine"
ARCHIVE = PipelineSettings.archive()
FLAGS = ["--window-ms", str(round(ARCHIVE.window_s * 1000)), "--hop-ms", str(round(ARCHIVE.hop_s * 1000)),
         "--smoothing-windows", str(ARCHIVE.detector.smoothing_windows)]
needs_model = pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="needs the bundled model")


def test_the_archive_windows_are_not_the_live_ones():
    live = PipelineSettings()
    assert ARCHIVE.hop_s > live.hop_s, "scan's speed comes from a longer hop"
    assert ARCHIVE.window_s - ARCHIVE.hop_s >= live.window_s - live.hop_s, "a keyword the live windows hold whole fits too"
    assert PipelineSettings.archive(hop_s=0.5).window_s == ARCHIVE.window_s and ARCHIVE.right_context_s == live.right_context_s


def test_scan_and_listen_share_their_defaults_and_the_flags_give_the_archive_settings():
    from kwstream.cli import options
    from kwstream.cli.main import build_parser

    parser = build_parser()
    listen = options.settings(parser.parse_args(["listen", "--keywords", "hey"]))
    scan = options.settings(parser.parse_args(["scan", "x", "--out", "x.jsonl"]))
    archive = options.settings(parser.parse_args(["scan", "x", "--out", "x.jsonl", *FLAGS]))
    live = PipelineSettings()
    assert (listen.window_s, listen.hop_s, listen.detector) == (scan.window_s, scan.hop_s, scan.detector) == (live.window_s, live.hop_s, live.detector)
    assert (archive.window_s, archive.hop_s, archive.detector) == (ARCHIVE.window_s, ARCHIVE.hop_s, ARCHIVE.detector)


@needs_model
def test_scan_gives_the_detections_of_listen_file_with_the_same_flags(tmp_path, capsys):
    out = tmp_path / "hits.jsonl"
    assert main(["scan", str(ASSETS), "--keywords", KEYWORDS, "--out", str(out), "--workers", "1", *FLAGS]) == EXIT_OK
    scanned: dict[str, list] = {}
    for row in map(json.loads, out.read_text().splitlines()):
        scanned.setdefault(Path(row["file"]).name, []).append((row["keyword"], row["score"], row["start"], row["end"]))
    listened = {}
    for path in sorted(ASSETS.glob("*.*")):
        if path.suffix in (".wav", ".flac"):
            capsys.readouterr()
            assert main(["listen", "--file", str(path), "--fast", "--json", "--keywords", KEYWORDS, *FLAGS]) == EXIT_OK
            found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
            listened[path.name] = [(d["keyword"], d["score"], round(d["start"], 3), round(d["end"], 3)) for d in found]
    assert len(listened) == 5 and {k for hits in scanned.values() for k, *_ in hits} >= {"hey", "stop"}
    assert scanned == {name: hits for name, hits in listened.items() if hits}


@pytest.mark.parametrize("flags", [["--hop-ms", "3000"], ["--window-ms", "800", "--hop-ms", "1000"]], ids=["hop past the window", "window under the hop"])
def test_a_hop_longer_than_the_window_fails_with_one_line(tmp_path, capsys, flags):
    out = tmp_path / "hits.jsonl"
    assert main(["scan", str(DEMO_AUDIO), "--keywords", "hey", "--out", str(out), *flags]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kwstream: error:") and "hop" in err[0], err
    assert not out.exists()


def test_a_hop_that_is_no_positive_number_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["scan", str(DEMO_AUDIO), "--keywords", "hey", "--out", str(tmp_path / "hits.jsonl"), "--hop-ms", "0"])
    assert stop.value.code == EXIT_USER_ERROR
    assert "--hop-ms: must be a positive number" in capsys.readouterr().err.strip().splitlines()[-1]
