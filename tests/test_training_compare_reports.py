"""Development reports compared side by side, and only where they were measured on the same files."""

from pathlib import Path

from training.compare_reports import compare
from training.dev_report import files_digest


def _set(recalls: dict[str, float], labels: int = 20, files: str | None = "abc") -> dict:
    keywords = {k: {"labels": labels, "recall_at_0.5": r, "recall_at_1": r, "recall_at_5": min(1.0, r + 0.1)}
                for k, r in recalls.items()}
    mean = {f: sum(k[f] for k in keywords.values()) / len(keywords) for f in ("recall_at_0.5", "recall_at_1", "recall_at_5")}
    return {"keywords": keywords, "mean": mean, **({"files": files} if files else {})}


def test_the_table_counts_the_labels_found_more_or_fewer_per_keyword_and_in_all():
    baseline = {"settings": {}, "natural": _set({"hey": 0.10, "stop": 0.50})}
    candidate = {"settings": {}, "natural": _set({"hey": 0.00, "stop": 0.65})}
    lines, warnings = compare(baseline, candidate)
    assert warnings == []
    assert lines[2] == "| natural | hey | 20 | 0.100 / 0.100 / 0.200 | 0.000 / 0.000 / 0.100 | -2 / -2 / -2 |"
    assert lines[3] == "| natural | stop | 20 | 0.500 / 0.500 / 0.600 | 0.650 / 0.650 / 0.750 | +3 / +3 / +3 |"
    assert lines[4] == "| natural | **mean** | 40 | 0.300 / 0.300 / 0.400 | 0.325 / 0.325 / 0.425 | +1 / +1 / +1 |"


def test_a_set_measured_on_other_files_is_not_compared_and_one_without_digests_is_with_a_warning():
    baseline = {"settings": {}, "rebuilt": _set({"hey": 0.1}, files="old"), "theo": _set({"one": 0.5}, files=None)}
    candidate = {"settings": {}, "rebuilt": _set({"hey": 0.2}, files="new"), "theo": _set({"one": 0.6})}
    lines, warnings = compare(baseline, candidate)
    assert not any("| rebuilt |" in line for line in lines)
    assert any(line.startswith("| theo | one |") for line in lines)
    assert len(warnings) == 2 and "rebuilt: measured on other files" in warnings[0] and "theo: a report has no digest" in warnings[1]


def test_the_digest_follows_the_labels_and_the_files(tmp_path: Path):
    labels, stream = tmp_path / "labels.csv", tmp_path / "a.flac"
    labels.write_text("stream,start,end,keyword\na,1.0,1.5,hey\n")
    stream.write_bytes(b"x" * 10)
    first = files_digest(labels, [stream])
    assert files_digest(labels, [stream]) == first
    stream.write_bytes(b"x" * 11)
    assert files_digest(labels, [stream]) != first
    stream.write_bytes(b"x" * 10)
    labels.write_text("stream,start,end,keyword\na,1.0,1.6,hey\n")
    assert files_digest(labels, [stream]) != first
