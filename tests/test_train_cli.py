"""`kwstream train` and `--classifier` as a user runs them: a subprocess on a small Speech Commands
layout of real recorded digits, with the tiny random model (wiring, not accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_speech_stream
from kwstream.model.random_model import save_random_ctc_model
from test_classifier import write_layout
from test_cli import assert_user_error, kwstream

pytestmark = pytest.mark.slow  # `kwstream train` in a subprocess: training


@pytest.fixture(scope="module")
def trained(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data folder, head file, cache folder) after one training run."""
    root = tmp_path_factory.mktemp("train")
    data = write_layout(root / "data")
    head, cache = root / "head.pt", root / "cache"
    result = kwstream("train", "--data", str(data), "--out", str(head), "--model", str(tiny_model), "--threads", "1",
                      "--epochs", "2", "--copies", "1", "--val-speakers", "theo", "--cache", str(cache), "--json")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["classes"] == ["seven", "three", "_unknown_", "_silence_"]
    assert sum(map(sum, report["confusion"])) == report["val_clips"]  # theo's three and held-out background
    assert report["background_hours"] > 0
    assert "encoding training clips" in result.stderr.decode()
    return data, head, cache


def test_train_writes_head_and_confusion_plot(trained: tuple[Path, Path, Path]) -> None:
    _, head, _ = trained
    assert head.is_file()
    png = head.with_name("head.pt.confusion.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(head.parent.glob("*partial*"))


def test_second_run_reads_every_feature_from_the_cache(trained: tuple[Path, Path, Path], tiny_model: Path, tmp_path: Path) -> None:
    data, _, cache = trained
    result = kwstream("train", "--data", str(data), "--out", str(tmp_path / "again.pt"), "--model", str(tiny_model),
                      "--threads", "1", "--epochs", "1", "--copies", "1", "--val-speakers", "theo", "--cache", str(cache))
    assert result.returncode == 0, result.stderr.decode()
    assert "encoding" not in result.stderr.decode()
    assert "validation accuracy" in result.stdout.decode() and "confusion" in result.stdout.decode()


def test_listen_spots_the_heads_keywords(trained: tuple[Path, Path, Path], tiny_model: Path, tmp_path: Path) -> None:
    _, head, _ = trained
    stream = make_speech_stream(["3_theo_0", "7_jackson_0"]).write(tmp_path / "talk.wav")
    result = kwstream("listen", "--model", str(tiny_model), "--classifier", str(head), "--file", str(stream), "--fast",
                      "--threshold", "0.01", "--json")
    assert result.returncode == 0, result.stderr.decode()
    assert "for seven, three" in result.stderr.decode()
    detections = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert detections and {d["keyword"] for d in detections} <= {"seven", "three"}


def test_listen_refuses_a_head_from_another_model(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, head, _ = trained
    other = save_random_ctc_model(tmp_path / "other", "tiny", seed=1)
    stream = make_speech_stream(["3_theo_0"]).write(tmp_path / "talk.wav")
    result = kwstream("listen", "--model", str(other), "--classifier", str(head), "--file", str(stream), "--fast")
    assert_user_error(result, "trained on features of model", "retrain")


@pytest.mark.parametrize("breakage, message", [("missing", "no such data folder"), ("empty_class", "has no audio files")])
def test_bad_data_is_one_line_and_writes_nothing(tiny_model: Path, tmp_path: Path, breakage: str, message: str) -> None:
    data = tmp_path / "data"
    if breakage == "empty_class":
        write_layout(data, empty_class=True)
    head = tmp_path / "head.pt"
    result = kwstream("train", "--data", str(data), "--out", str(head), "--model", str(tiny_model),
                      "--cache", str(tmp_path / "cache"))
    assert_user_error(result, message)
    assert not head.exists() and not head.with_name("head.pt.confusion.png").exists()


def test_unfrozen_top_block_trains_and_listens(trained: tuple[Path, Path, Path], tiny_model: Path, tmp_path: Path) -> None:
    data, _, cache = trained
    head = tmp_path / "unfrozen.pt"
    result = kwstream("train", "--data", str(data), "--out", str(head), "--model", str(tiny_model), "--threads", "1",
                      "--epochs", "1", "--copies", "0", "--unfreeze", "1", "--val-speakers", "theo", "--cache", str(cache))
    assert result.returncode == 0, result.stderr.decode()
    stream = make_speech_stream(["7_jackson_0"]).write(tmp_path / "talk.wav")
    result = kwstream("listen", "--model", str(tiny_model), "--classifier", str(head), "--file", str(stream), "--fast",
                      "--threshold", "0.01", "--json")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.strip()
    too_many = kwstream("train", "--data", str(data), "--out", str(head), "--model", str(tiny_model), "--unfreeze", "5")
    assert_user_error(too_many, "--unfreeze must be between 0 and")
