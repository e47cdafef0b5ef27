"""Enrolled keywords: the DTW matcher against a brute-force reference, the store, enrollment's
refusals, and spotting an enrolled digit in real speech with the bundled model (also headless)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numba
import numpy as np
import pytest

from conftest import REPO, SAMPLE_RATE
from kwstream.audio.sources import AudioFile
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.enroll.enroll import EnrollSettings, check_examples, enroll, pick_threshold, prepare
from kwstream.keywords.enrolled.scorer import EnrolledScorer, ExampleSet, _dtw, subsequence_dtw, unit_rows
from kwstream.keywords.enrolled.store import EnrolledKeyword, EnrollmentError, KeywordStore, check_model, load_scorer
from kwstream.spotter import Spotter, SpotterSettings
from kwstream.audio.io import read_audio
from training.digit_streams import DEFAULT_FSDD_DIR

BUNDLED = REPO / "kwstream" / "assets" / "model"
RECORDINGS = DEFAULT_FSDD_DIR / "recordings"
needs_fsdd = pytest.mark.skipif(not RECORDINGS.is_dir(), reason="needs ../shared/data/fsdd")


def reference_dtw(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same recursion, one cell at a time: steps (1,1), (1,2) and two example frames on one window frame."""
    m, n = distances.shape

    @functools.lru_cache(None)
    def best(i: int, j: int) -> tuple[float, int]:
        if i < 0 or j < 0:
            return np.inf, -1
        if i == 0:
            return distances[0, j], j
        two = (distances[0, j], j) if i == 1 else (best(i - 2, j - 1)[0] + distances[i - 1, j], best(i - 2, j - 1)[1])
        cost, start = min([best(i - 1, j - 1), best(i - 1, j - 2), two], key=lambda t: t[0])
        return cost + distances[i, j], start

    results = [best(m - 1, j) for j in range(n)]
    return np.array([c for c, _ in results]) / m, np.array([s for _, s in results])


def test_dtw_matches_the_cell_by_cell_recursion():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(1, 9, size=3)
        distances = rng.random((3, lengths.max(), int(rng.integers(1, 16))))
        cost, start = subsequence_dtw(distances, lengths)
        for e in range(3):
            want_cost, want_start = reference_dtw(distances[e, :lengths[e]])
            np.testing.assert_allclose(cost[e], want_cost)
            fits = np.isfinite(want_cost)
            assert np.array_equal(start[e][fits], want_start[fits])


def test_dtw_in_float32_as_scoring_runs_it_matches_the_recursion_with_ties_going_to_the_first_step():
    rng = np.random.default_rng(3)
    for trial in range(50):
        lengths = rng.integers(1, 30, size=4)
        distances = rng.random((4, lengths.max(), int(rng.integers(1, 80)))).astype(np.float32)
        if trial % 2:
            distances = np.round(distances * 4) / 4  # few distinct values: many equal paths
        cost, start = subsequence_dtw(distances, lengths)
        for e in range(4):
            want_cost, want_start = reference_dtw(distances[e, :lengths[e]])
            np.testing.assert_allclose(cost[e], want_cost, rtol=1e-6)
            fits = np.isfinite(want_cost)
            assert np.array_equal(start[e][fits], want_start[fits])


def test_the_dtw_is_compiled_when_the_scorer_is_built():
    if numba.config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT is set")
    EnrolledScorer(["a"], [3], [[np.ones((4, 8), np.float32)] * 2], [None])
    assert _dtw.signatures  # compiled (or loaded from numba's cache), not interpreted


def test_a_stretched_copy_is_found_where_it_lies_and_a_short_window_scores_zero():
    rng = np.random.default_rng(1)
    example = rng.standard_normal((20, 16))
    stretched = np.repeat(example, 3, axis=0)[::2]  # 1.5 times slower: 30 frames
    window = np.concatenate([rng.standard_normal((12, 16)), stretched, rng.standard_normal((9, 16))])
    example_set = ExampleSet.build([[example], [rng.standard_normal((20, 16))]])
    found, other = example_set.match(window)
    assert found.score > 0.99 and found.start_frame in (12, 13) and found.end_frame == 42  # its first frame is there twice
    assert other.score < 0.3
    assert example_set.match(window[:9])[0].score == 0.0  # under half the example's length: no path fits
    assert example_set.match(window[:0])[0].score == 0.0


def test_unit_rows_survive_silence():
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0]])


def test_threshold_sits_between_positives_and_negatives():
    assert pick_threshold([0.8, 0.9], np.array([0.3, 0.6])).threshold == pytest.approx(0.7)
    overlapping = pick_threshold([0.5, 0.9], np.array([0.3, 0.6]))
    assert overlapping.threshold == pytest.approx(0.61) and "overlap" in overlapping.method
    assert pick_threshold([0.8, 0.9], None).threshold == pytest.approx(0.75)


def test_examples_that_do_not_resemble_each_other_are_refused():
    with pytest.raises(EnrollmentError, match="do not resemble each other"):
        pick_threshold([0.7, 0.02, 0.8], None)


def _keyword(name: str = "hello", fingerprint: str = "abc") -> EnrolledKeyword:
    rng = np.random.default_rng(2)
    examples = [rng.standard_normal((n, 8)).astype(np.float32) for n in (30, 34, 28)]
    return EnrolledKeyword(name, 3, 0.42, fingerprint, "some/model", examples, ["a.wav", "b.wav", "c.wav"], {"method": "test"})


def test_store_round_trip_in_plain_files(tmp_path):
    store = KeywordStore(tmp_path / "kw")
    assert store.names() == []
    folder = store.save(_keyword())
    assert sorted(p.name for p in folder.iterdir()) == ["examples.npz", "keyword.json"]
    assert json.loads((folder / "keyword.json").read_text())["threshold"] == 0.42
    loaded = store.load("hello")
    for got, want in zip(loaded.examples, _keyword().examples):
        np.testing.assert_array_equal(got, want)
    assert (loaded.layer, loaded.threshold, loaded.fingerprint, loaded.sources) == (3, 0.42, "abc", ["a.wav", "b.wav", "c.wav"])
    with pytest.raises(EnrollmentError, match="already enrolled"):
        store.save(_keyword())
    store.save(_keyword(fingerprint="def"), replace=True)
    assert store.load("hello").fingerprint == "def" and store.names() == ["hello"]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]  # no staging left behind
    store.remove("hello")
    assert store.names() == []


def test_store_refuses_bad_names_unknown_and_corrupt_keywords(tmp_path):
    store = KeywordStore(tmp_path)
    with pytest.raises(EnrollmentError, match="letters, digits"):
        store.save(_keyword("../evil"))
    with pytest.raises(EnrollmentError, match="no enrolled keyword 'nope'"):
        store.load("nope")
    store.save(_keyword())
    (tmp_path / "hello" / "examples.npz").write_bytes(b"not a zip")
    with pytest.raises(EnrollmentError, match="unreadable"):
        store.load("hello")


@pytest.fixture(scope="module")
def bundled() -> Encoder:
    return Encoder(EncoderSettings(model=str(BUNDLED), threads=1))


def test_a_keyword_from_another_model_is_refused(tmp_path, tiny_model, bundled):
    keyword = _keyword(fingerprint=bundled.fingerprint)
    check_model(keyword, bundled)
    tiny = Encoder(EncoderSettings(model=str(tiny_model)))
    with pytest.raises(EnrollmentError, match="enrolled with model some/model .* enroll it again"):
        check_model(keyword, tiny)
    KeywordStore(tmp_path).save(keyword)
    with pytest.raises(EnrollmentError, match="not with"):
        load_scorer(["hello"], KeywordStore(tmp_path), tiny)


@needs_fsdd
def test_enrollment_refuses_too_few_empty_and_mismatched_examples(bundled):
    settings = EnrollSettings()
    word = read_audio(RECORDINGS / "7_jackson_0.wav")
    with pytest.raises(EnrollmentError, match="at least 2"):
        enroll("seven", [(word, "a.wav")], bundled, SpotterSettings())
    silence = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 1e-4
    with pytest.raises(EnrollmentError, match="b.wav holds no speech"):
        enroll("seven", [(word, "a.wav"), (silence, "b.wav")], bundled, SpotterSettings())
    three_words = np.concatenate([read_audio(RECORDINGS / f"{d}_jackson_0.wav") for d in (7, 3, 9)])
    with pytest.raises(EnrollmentError, match="at most 3 s"):
        prepare(np.concatenate([three_words] * 2), "long.wav", settings)
    examples = [prepare(word, "a.wav", settings), prepare(word, "b.wav", settings), prepare(three_words, "c.wav", settings)]
    with pytest.raises(EnrollmentError, match="c.wav is .* more than 2.5x apart"):
        check_examples(examples)


def _stream(names: list[str]) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """FSDD words with 1 s pauses over a faint noise floor, and where each lies."""
    rng = np.random.default_rng(0)
    parts, spans, position = [np.zeros(SAMPLE_RATE, np.float32)], [], SAMPLE_RATE
    for name in names:
        word = read_audio(RECORDINGS / f"{name}.wav")
        spans.append((name, position / SAMPLE_RATE, (position + len(word)) / SAMPLE_RATE))
        parts += [word, np.zeros(SAMPLE_RATE, np.float32)]
        position += len(word) + SAMPLE_RATE
    audio = np.concatenate(parts)
    return audio + rng.standard_normal(len(audio)).astype(np.float32) * 3e-4, spans


def _spot(encoder: Encoder, keyword: EnrolledKeyword, store_dir: Path, audio_path: Path) -> list:
    store = KeywordStore(store_dir)
    store.save(keyword, replace=True)
    scorer = load_scorer([keyword.name], store, encoder)
    spotter = Spotter(scorers=[scorer], source=AudioFile(audio_path, realtime=False), settings=SpotterSettings(),
                      encoder=encoder)
    with spotter:
        return list(spotter.detections())


@needs_fsdd
@pytest.mark.parametrize("headless", [False, pytest.param(True, marks=pytest.mark.slow)])  # True saves and loads a checkpoint
def test_an_enrolled_digit_is_spotted_in_the_same_speakers_speech(tmp_path, bundled, headless):
    import soundfile
    from transformers import AutoFeatureExtractor, Wav2Vec2Model

    encoder = bundled
    if headless:  # the same encoder without its CTC head: a pretrained-only checkpoint
        Wav2Vec2Model.from_pretrained(BUNDLED).save_pretrained(tmp_path / "headless")
        AutoFeatureExtractor.from_pretrained(BUNDLED).save_pretrained(tmp_path / "headless")
        encoder = Encoder(EncoderSettings(model=str(tmp_path / "headless"), threads=1))
        assert not encoder.has_ctc_head
    examples = [(read_audio(RECORDINGS / f"7_jackson_{i}.wav"), f"7_jackson_{i}") for i in range(3)]
    keyword = enroll("seven", examples, encoder, SpotterSettings())
    assert keyword.layer == 3 and len(keyword.examples) == 3 and 0.3 < keyword.threshold < 1
    audio, spans = _stream(["3_jackson_10", "7_jackson_10", "9_jackson_10", "1_jackson_10", "7_jackson_11", "6_jackson_10"])
    soundfile.write(tmp_path / "talk.flac", audio, SAMPLE_RATE)
    detections = _spot(encoder, keyword, tmp_path / "store", tmp_path / "talk.flac")
    sevens = [(start, end) for name, start, end in spans if name.startswith("7_")]
    assert len(detections) == 2, detections
    for d, (start, end) in zip(detections, sevens):
        assert start - 0.3 <= d.start < d.end <= end + 0.3 and d.score >= keyword.threshold  # the bundled model's end-to-end tolerance


def test_calibration_sees_only_the_scores_the_detector_compares():
    """A window whose own score is 0 has no alignment and never fires: smoothing it into its
    neighbour (as np.convolve did) made a score of 0.4 here that no threshold could ever fire on."""
    from kwstream.stream.replay import compared_scores, replay
    from kwstream.stream.detector import DetectorSettings
    from kwstream.stream.detector import WindowScore
    from kwstream.stream.events import ScoredWindow

    def windows(scores):
        return [ScoredWindow(i * 0.25, i * 0.25 + 1.5, {"kw": WindowScore("kw", s, i * 0.25, i * 0.25 + 0.5)}, 0.0)
                for i, s in enumerate(scores)]

    settings = DetectorSettings()
    assert compared_scores(windows([0.8, 0.0]), "kw", settings) == []
    assert replay(windows([0.8, 0.0]), "kw", 0.35, settings) == []
    assert compared_scores(windows([0.0, 0.8, 0.6]), "kw", settings) == pytest.approx([0.4, 0.7])
    assert len(replay(windows([0.0, 0.8, 0.6]), "kw", 0.7, settings)) == 1


@needs_fsdd
def test_the_threshold_enrollment_picks_is_reached_by_listens_pipeline_on_every_example(bundled):
    from kwstream.keywords.keyword_set import KeywordSet
    from kwstream.stream.detector import Detection
    from kwstream.stream.pipeline import KeywordPipeline, run

    settings = SpotterSettings()
    recordings = [(read_audio(RECORDINGS / f"7_jackson_{i}.wav"), f"7_jackson_{i}") for i in range(3)]
    keyword = enroll("seven", recordings, bundled, settings)
    for i, (audio, source) in enumerate(recordings):
        example = prepare(audio, source, EnrollSettings(), seed=i)  # as enroll() prepared it
        others = [f for j, f in enumerate(keyword.examples) if j != i]  # leave one out, as calibration does
        scorer = EnrolledScorer([keyword.name], [keyword.layer], [others], [keyword.threshold])
        pipeline = KeywordPipeline(KeywordSet(bundled, scorers=[scorer]), bundled, settings, events=False)
        fired = [d for d in run(pipeline, example.audio) if isinstance(d, Detection)]
        assert fired and fired[0].score >= keyword.threshold, (source, keyword.threshold, keyword.calibration)
