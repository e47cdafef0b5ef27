"""The classifier head and its scorer, the dataset reader, the feature cache and the report, on the
tiny random model and real recorded digits (wiring and invariants, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from conftest import SAMPLE_RATE, load_word
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.keywords.classifier.head import (
    SILENCE_CLASS, UNKNOWN_CLASS, ClassifierError, ClassifierHead, ClassifierScorer, HeadConfig, attention_span,
    load_head, save_head, top_blocks,
)
from kwstream.model.random_model import save_random_ctc_model
from kwstream.train.dataset import DatasetError, read_dataset, speaker_of
from kwstream.train.features import AugmentSettings, ExampleMaker, FeatureCache
from kwstream.train.fit import predict
from kwstream.train.report import background_false_alarms


@pytest.fixture(scope="module")
def encoder(tiny_model: Path) -> Encoder:
    return Encoder(EncoderSettings(model=str(tiny_model), threads=1))


def make_head(encoder: Encoder, unfrozen: int = 0, clip_frames: int = 20) -> ClassifierHead:
    torch.manual_seed(0)
    config = HeadConfig(classes=["three", "seven", UNKNOWN_CLASS, SILENCE_CLASS], layer=encoder.layers,
                        hidden_size=32, fingerprint=encoder.fingerprint, model_name=encoder.name,
                        unfrozen_blocks=unfrozen, clip_frames=clip_frames, stride_frames=3, width=16)
    return ClassifierHead(config, top_blocks(encoder, unfrozen)).eval()


def speech(encoder: Encoder, layer: int) -> np.ndarray:
    audio = np.concatenate([load_word("3_theo_0"), np.zeros(4000, np.float32), load_word("7_jackson_0")])
    return encoder.encode(audio, (layer,)).features[layer]


def test_sliding_scorer_matches_the_head_on_each_sub_window(encoder: Encoder) -> None:
    head = make_head(encoder)
    scorer = ClassifierScorer(head)
    features = speech(encoder, encoder.layers)
    assert len(features) > 2 * head.config.clip_frames
    probs, starts, _ = scorer.posteriors(features)
    assert starts[0] == 0 and starts[-1] == len(features) - head.config.clip_frames  # the window's end is scored too
    clips = np.stack([features[s:s + head.config.clip_frames] for s in starts])
    np.testing.assert_allclose(probs, predict(head, clips), atol=1e-5)


def test_scores_are_posteriors_with_frames_inside_the_window(encoder: Encoder) -> None:
    scorer = ClassifierScorer(make_head(encoder))
    frames = encoder.encode(load_word("3_theo_0"), (encoder.layers,))
    for window in (frames, frames.slice(0, 8)):  # longer than a clip, and shorter (start of a speech span)
        matches = scorer.score_frames(window)
        assert len(matches) == len(scorer.keywords) == 2
        for m in matches:
            assert 0.0 <= m.score <= 1.0
            assert 0 <= m.start_frame < m.end_frame <= len(window)
    assert scorer.layers == (encoder.layers,)
    assert scorer.thresholds == {"three": 0.5, "seven": 0.5}


def test_unfrozen_blocks_reproduce_the_encoders_own_layers(encoder: Encoder) -> None:
    """The head runs its copies of the top blocks on the layer below; untrained, they must give
    exactly the encoder's top layer, or a head trained this way would see other features in the stream."""
    head = make_head(encoder, unfrozen=1)
    audio = load_word("7_jackson_0")
    out = encoder.encode(audio, (encoder.layers - 1, encoder.layers)).features
    with torch.inference_mode():
        top = head.run_blocks(torch.from_numpy(out[encoder.layers - 1])[None])[0].numpy()
    np.testing.assert_allclose(top, out[encoder.layers], atol=1e-4)
    assert ClassifierScorer(head).layers == (encoder.layers - 1,)


def test_head_file_round_trip_and_refusal_of_another_model(encoder: Encoder, tmp_path: Path) -> None:
    head = make_head(encoder, unfrozen=1)
    path = tmp_path / "head.pt"
    save_head(head, path)
    assert [p.name for p in tmp_path.iterdir()] == ["head.pt"]  # no partial file left behind
    loaded = load_head(path, encoder)
    features = speech(encoder, encoder.layers - 1)[: head.config.clip_frames][None]
    np.testing.assert_allclose(predict(loaded, features), predict(head, features), atol=1e-6)

    other = Encoder(EncoderSettings(model=str(save_random_ctc_model(tmp_path / "other", "tiny", seed=1))))
    with pytest.raises(ClassifierError, match="trained on features of model"):
        load_head(path, other)
    (tmp_path / "junk.pt").write_bytes(b"not a head")
    with pytest.raises(ClassifierError, match="not a kwstream classifier head"):
        load_head(tmp_path / "junk.pt", encoder)
    with pytest.raises(ClassifierError, match="no such classifier file"):
        load_head(tmp_path / "missing.pt", encoder)


def test_attention_span_covers_the_weight() -> None:
    weights = np.zeros(20)
    weights[5:9] = 0.25
    assert attention_span(weights) == (5, 9)
    assert attention_span(np.full(10, 0.1), mass=1.0) == (0, 10)


def test_speakers_from_file_names() -> None:
    assert speaker_of(Path("3_theo_12.wav")) == "theo"
    assert speaker_of(Path("0a2b400e_nohash_1.wav")) == "0a2b400e"
    assert speaker_of(Path("hello.wav")) == "hello"


def write_layout(root: Path, empty_class: bool = False) -> Path:
    """three and seven as keywords, other digits as unknown, pink-ish noise as background; the
    second "speaker" of each word is the same recording slowed down."""
    words = {"three": "3_theo_0", "seven": "7_jackson_0", UNKNOWN_CLASS: "0_lucas_1"}
    for folder, name in words.items():
        (root / folder).mkdir(parents=True)
        if empty_class and folder == "seven":
            continue
        audio = load_word(name)
        digit, speaker, index = name.split("_")
        soundfile.write(root / folder / f"{name}.wav", audio, SAMPLE_RATE)
        slow = np.interp(np.arange(0, len(audio), 0.9), np.arange(len(audio)), audio).astype(np.float32)
        soundfile.write(root / folder / f"{digit}_other{speaker}_{index}.wav", slow, SAMPLE_RATE)
    (root / "_background_noise_").mkdir()
    rng = np.random.default_rng(0)
    noise = np.cumsum(rng.standard_normal(8 * SAMPLE_RATE)) * 1e-3
    soundfile.write(root / "_background_noise_" / "noise.wav", (noise - noise.mean()).astype(np.float32) * 0.1, SAMPLE_RATE)
    return root


def test_dataset_split_by_named_speakers(tmp_path: Path) -> None:
    data = read_dataset(write_layout(tmp_path / "data"), val_percent=0, val_speakers=["theo"])
    assert data.keywords == ["seven", "three"]
    assert data.classes == ["seven", "three", UNKNOWN_CLASS, SILENCE_CLASS]
    assert [c.path.name for c in data.validation] == ["3_theo_0.wav"]
    assert {c.speaker for c in data.train} == {"othertheo", "jackson", "otherjackson", "lucas", "otherlucas"}


@pytest.mark.parametrize("breakage, message", [
    ("missing", "no such data folder"),
    ("empty_class", "class 'seven' has no audio files"),
    ("no_unknown", "no _unknown_ folder"),
    ("no_background", "no _background_noise_"),
    ("unknown_speaker", "validation speaker(s) nobody"),
    ("all_validation", "no training files left"),
])
def test_dataset_errors(tmp_path: Path, breakage: str, message: str) -> None:
    root = tmp_path / "data"
    if breakage != "missing":
        write_layout(root, empty_class=breakage == "empty_class")
    if breakage == "no_unknown":
        for f in (root / UNKNOWN_CLASS).iterdir():
            f.unlink()
        (root / UNKNOWN_CLASS).rmdir()
    if breakage == "no_background":
        for f in (root / "_background_noise_").iterdir():
            f.unlink()
    speakers = {"unknown_speaker": ["nobody"], "all_validation": ["theo", "othertheo"]}.get(breakage, [])
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_dataset(root, val_percent=0, val_speakers=speakers)


def test_feature_cache_encodes_each_example_once(encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = read_dataset(write_layout(tmp_path / "data"), val_percent=0)
    settings = AugmentSettings(copies=1)
    maker = ExampleMaker(data, settings)
    examples = maker.clips(data.train[:2], copies=1) + maker.silence(2, validation=False)
    assert len({maker.render(e).tobytes() for e in examples}) == len(examples)  # copies really differ
    np.testing.assert_array_equal(maker.render(examples[1]), maker.render(examples[1]))  # and are reproducible
    calls = []
    original = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda audio, layers=(): calls.append(1) or original(audio, layers))
    cache = FeatureCache(tmp_path / "cache", encoder, encoder.layers, settings)
    first = cache.features(examples, maker, "test")
    assert len(calls) == len(examples)
    assert first.shape == (len(examples), encoder.frames_for(SAMPLE_RATE), 32)
    again = cache.features(examples, maker, "test")
    assert len(calls) == len(examples)  # all from disk
    np.testing.assert_array_equal(first, again)
    FeatureCache(tmp_path / "cache", encoder, encoder.layers - 1, settings).features(examples[:1], maker, "test")
    assert len(calls) == len(examples) + 1  # another layer is another entry
    assert not list((tmp_path / "cache").rglob("*partial*"))


def test_background_false_alarms_go_through_the_detector() -> None:
    low, high = [0.0], [0.65]
    probs = np.array([low, high, low, low, high, high, high, low, low, low, low, low, low, high, high])
    files = ["a"] * 10 + ["b"] * 5
    # one window alone never fires (under the threshold plus the detector's lone-window margin, and
    # its mean with a low neighbour under the threshold); a run fires once per clip and refractory period;
    # a run across a file boundary does not join windows of two files
    assert background_false_alarms(probs, files, ["kw"], {"kw": 0.5}, hop_s=0.25, clip_s=1.0) == 2
