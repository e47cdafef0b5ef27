"""``kwstream scan`` on real speech with the bundled model: a folder of 21 short recordings (pieces of
the demo, FSDD digits of several speakers; WAV, FLAC and OGG at several rates and channel counts)
and one corrupt file.

Each file's detections are those of the Spotter on an AudioFile (what ``listen --file`` runs), plus
one error row; worker processes, a resumed interrupted scan and a local Ray cluster give the same
rows as one worker; bad input ends with one line and exit status 2, a file that could not be read
with exit status 1 (after the other files' rows); what is no regular file (a FIFO, a broken symbolic
link) is never opened.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from kwstream.assets import DEMO_AUDIO
from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.audio.sources import AudioFile
from kwstream.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR
from kwstream.cli.main import main
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.model.resolve import BUNDLED_MODEL_DIR
from kwstream.scan.manifest import manifest_path
from kwstream.spotter import Spotter

REPO = Path(__file__).resolve().parent.parent
FSDD = REPO.parent / "shared" / "data" / "fsdd" / "recordings"

pytestmark = [
    pytest.mark.skipif(not (BUNDLED_MODEL_DIR / "config.json").is_file(), reason="needs the bundled model"),
    pytest.mark.skipif(not FSDD.is_dir(), reason="needs the development material (../shared/data/fsdd)"),
]
KEYWORDS = "hey,stop,three,seven"
FORMATS = [("wav", 16000, 1), ("flac", 44100, 2), ("ogg", 22050, 1), ("wav", 8000, 1)]


def _fsdd(name: str) -> np.ndarray:
    return read_audio(FSDD / f"{name}.wav")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """21 readable recordings in nested folders, a corrupt .wav, and a text file the walk skips."""
    root = tmp_path_factory.mktemp("archive")
    demo = read_audio(DEMO_AUDIO)
    pieces = [demo[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] for a, b in [(0, 4.5), (3.5, 8.0), (7.5, 11.4)]] + [demo] * 3
    speakers = ["theo", "jackson", "lucas", "nicolas"]
    for i in range(15):
        digits = [_fsdd(f"{d}_{speakers[i % 4]}_{i % 3}") for d in ((3, 7, 1), (7, 0, 3), (9, 3, 7))[i % 3]]
        gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
        pieces.append(np.concatenate([gap] + [x for d in digits for x in (d, gap)]))
    for i, audio in enumerate(pieces):
        suffix, rate, channels = FORMATS[i % len(FORMATS)]
        sub = root / f"part{i % 3}"
        sub.mkdir(exist_ok=True)
        resampled = soxr.resample(audio, SAMPLE_RATE, rate) if rate != SAMPLE_RATE else audio
        soundfile.write(sub / f"rec{i:02d}.{suffix}", np.repeat(resampled[:, None], channels, axis=1), rate)
    (root / "part1" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.fixture(scope="module")
def listened(folder: Path) -> dict[str, list]:
    """Each readable file's detections from the Spotter reading it as `listen --file` does."""
    encoder = Encoder(EncoderSettings(model=str(BUNDLED_MODEL_DIR)))
    found = {}
    for path in sorted(folder.rglob("rec*")):
        with Spotter(KEYWORDS.split(","), encoder=encoder, source=AudioFile(path, realtime=False)) as spotter:
            found[str(path)] = [(d.keyword, round(d.score, 4), round(d.start, 3), round(d.end, 3)) for d in spotter.detections()]
    return found


def scan(folder: Path, out: Path, *extra: str) -> int:
    return main(["scan", str(folder), "--keywords", KEYWORDS, "--out", str(out), *extra])


def rows(out: Path) -> list[tuple]:
    """The output's rows, in a fixed order (files finish in any order)."""
    return sorted(tuple(sorted(json.loads(line).items())) for line in out.read_text().splitlines())


@pytest.fixture(scope="module")
def one_worker(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one") / "results.jsonl"
    assert scan(folder, out, "--workers", "1") == EXIT_FAILED  # the corrupt file
    return out


def test_each_file_gives_the_detections_of_listen_file_and_the_corrupt_one_an_error_row(one_worker, listened):
    found: dict[str, list] = {}
    errors = []
    for line in one_worker.read_text().splitlines():
        row = json.loads(line)
        if "error" in row:
            errors.append(row)
        else:
            found.setdefault(row["file"], []).append((row["keyword"], row["score"], row["start"], row["end"]))
    assert [Path(e["file"]).name for e in errors] == ["broken.wav"] and "cannot read" in errors[0]["error"]
    assert sum(map(len, listened.values())) >= 15, "the material must hold detections to compare"
    assert {f: d for f, d in found.items()} == {f: d for f, d in listened.items() if d}
    manifest = manifest_path(one_worker).read_text().splitlines()
    assert len(manifest) == 1 + 22  # the header, 21 recordings and the corrupt file


def test_the_library_yields_the_same_detections(folder, one_worker):
    import kwstream

    hits = sorted((h.file, h.keyword, h.score, h.start, h.end) for h in kwstream.scan(folder, keywords=KEYWORDS.split(",")))
    expected = sorted((r["file"], r["keyword"], r["score"], r["start"], r["end"])
                      for r in map(json.loads, one_worker.read_text().splitlines()) if "error" not in r)
    assert hits == expected


@pytest.mark.slow
def test_two_worker_processes_equal_one(folder, one_worker, tmp_path):
    out = tmp_path / "results.jsonl"
    assert scan(folder, out, "--workers", "2") == EXIT_FAILED
    assert rows(out) == rows(one_worker)


@pytest.mark.slow
def test_a_worker_that_dies_has_its_files_retried(folder, one_worker, tmp_path):
    out = tmp_path / "results.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "kwstream", "scan", str(folder), "--keywords", KEYWORDS, "--out",
                                str(out), "--workers", "2", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert json.loads(process.stdout.readline())["type"] == "progress"  # the workers are up and scanning
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    workers = [int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer would
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == EXIT_FAILED, stderr  # the corrupt file
    assert json.loads(stdout.splitlines()[-1])["files"] == 22
    assert rows(out) == rows(one_worker)


def test_csv_output_holds_the_same_rows(folder, one_worker, tmp_path):
    import csv

    out = tmp_path / "results.csv"
    assert scan(folder, out, "--workers", "1", "--json") == EXIT_FAILED
    with out.open() as f:
        got = sorted((r["file"], r["keyword"], r["error"]) for r in csv.DictReader(f))
    assert got == sorted((r["file"], r.get("keyword", ""), r.get("error", "")) for r in map(json.loads, one_worker.read_text().splitlines()))


def test_a_file_list_scans_what_it_names_and_a_missing_file_becomes_an_error_row(folder, one_worker, tmp_path):
    """A list is made before the scan, of an archive that may change: a file gone since is an error
    row and the scan goes on (a missing path on the command line, a typo, stops it: see bad input)."""
    chosen = sorted(str(p) for p in folder.rglob("rec*"))[::5]
    gone = str(folder / "part0" / "deleted.wav")
    (tmp_path / "list.txt").write_text("\n".join(chosen[:2] + ["", gone] + chosen[2:]) + "\n")
    out = tmp_path / "results.jsonl"
    assert main(["scan", "--from-list", str(tmp_path / "list.txt"), "--keywords", KEYWORDS, "--out", str(out), "--workers", "1"]) == EXIT_FAILED
    expected = [r for r in rows(one_worker) if dict(r)["file"] in chosen]
    assert [r for r in rows(out) if "error" not in dict(r)] == expected and expected
    errors = [dict(r) for r in rows(out) if "error" in dict(r)]
    assert errors == [{"file": gone, "error": f"no such audio file: {gone}"}]


THREE = DEMO_AUDIO.parent / "fsdd_3_theo_0.wav"
"""A short clip the bundled model hears "three" in: one model load scans it in seconds."""


def _scan_process(cwd: Path, *args: str, timeout_s: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``kwstream scan`` in a process of its own, killed after ``timeout_s``: a scan that opens a FIFO waits for
    a writer forever, and must fail the test rather than hang the test run."""
    command = [sys.executable, "-m", "kwstream", "scan", *args, "--keywords", "three", "--out", "out.jsonl", "--workers", "1"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, env=env)


@pytest.mark.parametrize("given", ["list", "folder"])
def test_a_fifo_and_a_broken_link_become_error_rows_and_the_scan_goes_on(tmp_path, given):
    """Neither is opened (a FIFO would block in open()); each is an error row, and the exit status 1
    says some files could not be read."""
    archive = tmp_path / "archive"
    (archive / "special").mkdir(parents=True)
    (archive / "good.wav").write_bytes(THREE.read_bytes())
    os.mkfifo(archive / "special" / "pipe.wav")
    (archive / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    names = ["archive/good.wav", "archive/special/pipe.wav", "archive/dangling.wav"]
    if given == "list":
        (tmp_path / "list.txt").write_text("\n".join(names + ["archive/missing.wav"]) + "\n")
    done = _scan_process(tmp_path, *(["--from-list", "list.txt"] if given == "list" else ["archive"]))
    assert done.returncode == EXIT_FAILED, done.stderr
    found = {row["file"]: row for row in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert found["archive/good.wav"]["keyword"] == "three"
    assert found["archive/special/pipe.wav"]["error"] == "not a regular file: archive/special/pipe.wav (a FIFO)"
    assert found["archive/dangling.wav"]["error"].startswith("no such audio file: archive/dangling.wav (a symbolic link to")
    assert set(found) == set(names) | ({"archive/missing.wav"} if given == "list" else set())
    assert f"{len(found) - 1} file(s) could not be read" in done.stderr


def test_a_fifo_on_the_command_line_is_named_for_what_it_is(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    done = _scan_process(tmp_path, "pipe.wav")
    assert done.returncode == EXIT_USER_ERROR
    assert done.stderr.strip().splitlines()[-1] == "kwstream: error: not a regular file: pipe.wav (a FIFO)"
    assert not (tmp_path / "out.jsonl").exists()


def test_the_exit_status_is_0_when_every_file_was_read_and_1_when_one_was_not(tmp_path, capsys):
    """Scripts and cron jobs tell from the status alone; the readable files' rows are written either way."""
    (tmp_path / "good.wav").write_bytes(THREE.read_bytes())
    assert scan(tmp_path / "good.wav", tmp_path / "good.jsonl", "--workers", "1", "--json") == EXIT_OK
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["errors"] == 0
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    out = tmp_path / "both.jsonl"
    assert scan(tmp_path, out, "--workers", "1", "--json") == EXIT_FAILED
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["errors"] == 1
    assert rows(tmp_path / "good.jsonl") == [r for r in rows(out) if "error" not in dict(r)]


def test_a_truncated_wav_is_an_error_row_and_an_unsized_streamed_one_is_not(tmp_path):
    """libsndfile reads a WAV cut short as a shorter recording; its header says how long it was. A
    writer that could not seek back (a pipe) leaves a huge size (sox 0x7FFFF000, arecord 0x80000000, others
    0xFFFFFFFF): that is no truncation."""
    whole = THREE.read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:len(whole) // 3])
    data = whole.index(b"data")
    for writer, size in (("sox", 0x7FFFF000), ("arecord", 0x80000000), ("other", 0xFFFFFFFF)):
        (tmp_path / f"streamed_{writer}.wav").write_bytes(whole[:data + 4] + size.to_bytes(4, "little") + whole[data + 8:])
    out = tmp_path / "out.jsonl"
    assert scan(tmp_path, out, "--workers", "1") == EXIT_FAILED
    found = {Path(row["file"]).name: row for row in map(json.loads, out.read_text().splitlines())}
    header_s, held_s = soundfile.info(THREE).duration, soundfile.info(tmp_path / "cut.wav").duration
    assert found["cut.wav"] == {"file": str(tmp_path / "cut.wav"),
                                "error": f"truncated: header says {header_s:.2f} s, file holds {held_s:.2f} s"}
    assert all(found[f"streamed_{writer}.wav"]["keyword"] == "three" for writer in ("sox", "arecord", "other"))


def test_parquet_output_holds_the_same_rows(folder, one_worker, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "results.parquet"
    assert scan(folder, out, "--workers", "1") == EXIT_FAILED
    table = pq.read_table(out)
    assert table.column_names == ["file", "channel", "keyword", "score", "start", "end", "error"]
    assert str(table.schema.field("channel").type) == "int32" and table.column("channel").null_count == table.num_rows
    got = sorted(tuple(sorted((k, v) for k, v in r.items() if v is not None)) for r in table.to_pylist())
    assert got == rows(one_worker)


def _digits(names: list[str]) -> np.ndarray:
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    return np.concatenate([gap] + [x for name in names for x in (_fsdd(name), gap)])


def _found(out: Path) -> dict[tuple, list[tuple]]:
    """(file, channel) -> the detections' (keyword, score, start, end), in the output's order."""
    found: dict[tuple, list[tuple]] = {}
    for row in map(json.loads, out.read_text().splitlines()):
        found.setdefault((Path(row["file"]).stem, row.get("channel")), []).append((row["keyword"], row["score"], row["start"], row["end"]))
    return found


def test_channels_each_scans_every_channel_on_its_own(tmp_path):
    """A stereo file with "three" on its left channel and "seven" on its right, said at the same
    times by other speakers: each channel's rows are those of its channel alone as a mono file."""
    left = _digits(["3_theo_0", "3_jackson_1", "3_lucas_2"])
    right = _digits(["7_jackson_0", "7_nicolas_1", "7_lucas_3"])
    length = max(len(left), len(right))
    left, right = (np.pad(x, (0, length - len(x))) for x in (left, right))
    (tmp_path / "mono").mkdir()
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), SAMPLE_RATE)
    soundfile.write(tmp_path / "mono" / "left.wav", left, SAMPLE_RATE)
    soundfile.write(tmp_path / "mono" / "right.wav", right, SAMPLE_RATE)
    each, mixed, mono = tmp_path / "each.jsonl", tmp_path / "mixed.jsonl", tmp_path / "mono.jsonl"
    assert scan(tmp_path / "stereo.wav", each, "--workers", "1", "--channels", "each") == EXIT_OK
    assert scan(tmp_path / "stereo.wav", mixed, "--workers", "1") == EXIT_OK
    assert scan(tmp_path / "mono", mono, "--workers", "1") == EXIT_OK
    found, alone = _found(each), _found(mono)
    assert {k for k, *_ in found[("stereo", 0)]} == {"three"} and {k for k, *_ in found[("stereo", 1)]} == {"seven"}
    assert found == {("stereo", 0): alone[("left", None)], ("stereo", 1): alone[("right", None)]}
    assert set(_found(mixed)) == {("stereo", None)}, "the default mixes the channels: no channel column"
    record = json.loads(manifest_path(each).read_text().splitlines()[1])
    assert sorted({d[4] for d in record["detections"]}) == [0, 1]
    # a resume must keep the channels as they were
    assert scan(tmp_path / "stereo.wav", each, "--workers", "1", "--resume") == EXIT_USER_ERROR


@pytest.mark.slow
def test_an_interrupted_scan_resumed_equals_an_uninterrupted_one(folder, one_worker, tmp_path):
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "kwstream", "scan", str(folder), "--keywords", KEYWORDS, "--out", str(out),
               "--workers", "1", "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(5):  # Ctrl-C once five files are done
        assert json.loads(process.stdout.readline())["type"] == "progress"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr
    done = json.loads(stdout.splitlines()[-1])
    assert done["type"] == "summary" and done["interrupted"] and 5 <= done["files"] < 22
    first = {json.loads(line)["file"] for line in out.read_text().splitlines()}
    assert first <= {json.loads(line)["file"] for line in manifest_path(out).read_text().splitlines()[1:]}
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == EXIT_FAILED, resumed.stderr  # the corrupt file
    progress = [json.loads(line) for line in resumed.stdout.splitlines()][:-1]
    assert len(progress) == 22 - done["files"], "a rerun skips the finished files"
    assert rows(out) == rows(one_worker)


@pytest.mark.parametrize("case, message", [
    ("nothing", "no audio files found"),
    ("exists", "exists: pass --resume"),
    ("not a scan", "no scan's output to resume"),
    ("unspellable", "keyword"),
    ("format", "name it .jsonl, .csv or .parquet"),
    ("missing", "no such file or folder"),
    ("no list", "cannot read the file list"),
    ("broken link", "(a symbolic link to"),
])
def test_bad_input_fails_with_one_line(folder, one_worker, tmp_path, capsys, case, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio here")
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"mine": "kept"}\n')
    args = {
        "nothing": ["scan", str(empty), "--keywords", "hey", "--out", str(tmp_path / "r.jsonl")],
        "exists": ["scan", str(folder), "--keywords", "hey", "--out", str(one_worker)],
        "not a scan": ["scan", str(folder), "--keywords", "hey", "--out", str(mine), "--resume"],
        "unspellable": ["scan", str(folder), "--keywords", "h€y", "--out", str(tmp_path / "r.jsonl")],
        "format": ["scan", str(folder), "--keywords", "hey", "--out", str(tmp_path / "r.txt")],
        "missing": ["scan", str(folder), str(tmp_path / "typo"), "--keywords", "hey", "--out", str(tmp_path / "r.jsonl")],
        "no list": ["scan", "--from-list", str(tmp_path / "list.txt"), "--keywords", "hey", "--out", str(tmp_path / "r.jsonl")],
        "broken link": ["scan", str(tmp_path / "link.wav"), "--keywords", "hey", "--out", str(tmp_path / "r.jsonl")],
    }[case]
    (tmp_path / "link.wav").symlink_to(tmp_path / "gone.wav")
    assert main(args) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kwstream: error:") and message in err[0], err
    assert not (tmp_path / "r.jsonl").exists()
    assert mine.read_text() == '{"mine": "kept"}\n' and not (tmp_path / "mine.jsonl.manifest").exists()


def test_no_ray_cluster_fails_with_one_line_and_writes_nothing(folder, tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # auto: only a cluster started on this machine, and none runs
    out = tmp_path / "r.jsonl"
    assert main(["scan", str(folder), "--keywords", "hey", "--out", str(out), "--ray", "auto"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kwstream: error: no Ray cluster at 'auto'") and "ray start --head" in err[0], err
    assert not out.exists() and not manifest_path(out).exists()
    assert not ray.is_initialized()


@pytest.mark.parametrize(("address", "message"), [
    (None, "no Ray cluster at '127.0.0.1:{port}': nothing answers at 127.0.0.1:{port}"),
    ("127.0.0.1", "--ray '127.0.0.1': a Ray address is HOST:PORT"),
    ("head:port", "--ray 'head:port': a Ray address is HOST:PORT"),
    ("::1:6379", "--ray '::1:6379': a Ray address is HOST:PORT"),  # IPv6 goes in brackets, as Ray wants it
], ids=["nobody answers", "no port", "no port number", "IPv6 without brackets"])
def test_a_ray_address_nobody_answers_or_without_a_port_fails_at_once_with_one_line(tmp_path, address, message):
    """ray.init retries an address nobody answers for minutes (and a malformed one raised a traceback): the scan
    ends in seconds, before the model loads; the subprocess's timeout fails the test where it would wait."""
    pytest.importorskip("ray")
    with socket.socket() as taken:  # a port nobody listens on: bound to find a free one, then let go
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    (tmp_path / "good.wav").write_bytes(THREE.read_bytes())
    done = _scan_process(tmp_path, "good.wav", "--ray", address or f"127.0.0.1:{port}", timeout_s=30)
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"kwstream: error: {message.format(port=port)}"), line
    assert not (tmp_path / "out.jsonl").exists() and not manifest_path(tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("ray_option", [["--ray"], ["--ray", "auto"]], ids=["no address", "auto"])
def test_a_ray_address_from_the_environment_that_nobody_answers_fails_at_once_naming_it(tmp_path, ray_option):
    """Without an address, or with ``auto``, Ray connects to ``RAY_ADDRESS`` where it is set, and retried a dead one
    for minutes: it is probed as ``--ray HOST:PORT`` is, and the line says where the address came from."""
    pytest.importorskip("ray")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    (tmp_path / "good.wav").write_bytes(THREE.read_bytes())
    done = _scan_process(tmp_path, "good.wav", *ray_option, timeout_s=30,
                         env={**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"})
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"kwstream: error: no Ray cluster at '127.0.0.1:{port}' (RAY_ADDRESS): nothing answers"), line
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_a_local_ray_cluster_gives_the_detections_of_one_worker(folder, one_worker, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        out = tmp_path / "results.jsonl"
        assert scan(folder, out, "--ray", "--workers", "2") == EXIT_FAILED  # Ray already initialised: the scan uses it
    finally:
        ray.shutdown()
    assert rows(out) == rows(one_worker)
