"""Fast checks of vocabulary, prompts, voice/rate splits, manifests and FSDD import (no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training import corpus as C
from training.evaluate import edit_distance, error_rate
from training.kws_streams import NEAR_MISSES
from training.texts import KEYWORDS, NEAR_MISS_WORDS, PromptGenerator, number_words
from training.vocab import LETTERS, SAMPLE_RATE, VOCAB, build_processor, decode_ctc, encode, normalize_text

pytestmark = pytest.mark.slow  # the training workshop (training/, not installed)


def test_vocab_matches_wav2vec2_base_960h_layout() -> None:
    expected = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]
    assert list(VOCAB) == expected
    assert list(VOCAB.values()) == list(range(32))


def test_normalize_encode_decode_roundtrip() -> None:
    text = normalize_text("Hey, Computer! Turn-on the lights; it's 5 o'clock.")
    assert text == "HEY COMPUTER TURN ON THE LIGHTS IT'S O'CLOCK"
    ids = encode(text)
    # CTC greedy output: repeated frames and blanks between characters collapse back to the text
    frames = [i for token in ids for i in (token, token, 0)]
    assert decode_ctc(frames) == text


def test_processor_tokenizer_agrees_with_encode(tmp_path: Path) -> None:
    processor = build_processor(tmp_path)
    assert processor.tokenizer("STOP THE MUSIC").input_ids == encode("STOP THE MUSIC")
    assert processor.feature_extractor.sampling_rate == SAMPLE_RATE


def test_number_words() -> None:
    assert number_words(0) == "zero"
    assert number_words(17) == "seventeen"
    assert number_words(40) == "forty"
    assert number_words(342) == "three hundred forty two"
    assert number_words(9001) == "nine thousand one"


def test_prompts_are_seeded_in_vocabulary_and_cover_keywords() -> None:
    first = [PromptGenerator(np.random.default_rng(0))() for _ in range(1)]
    generator = PromptGenerator(np.random.default_rng(0))
    prompts = [generator() for _ in range(2000)]
    assert prompts[:1] == first
    normalised = [normalize_text(p) for p in prompts]
    assert all(normalised) and all(set(p) <= set(LETTERS) | {" "} for p in normalised)
    words = {w for p in normalised for w in p.split()}
    assert {k.upper() for k in KEYWORDS} <= words
    assert set("QXJZ") <= set("".join(normalised))


def test_near_miss_prompts_only_in_training_and_some_eval_near_misses_held_out() -> None:
    train = [normalize_text(j.text) for j in C.synthetic_jobs(Path("/x"), "train", 2000, seed=0)]
    held_out = [normalize_text(j.text) for j in C.synthetic_jobs(Path("/x"), "eval", 2000, seed=0)]
    plain_prompts = PromptGenerator(np.random.default_rng(0))
    plain_words = {w for _ in range(20000) for w in normalize_text(plain_prompts()).split()}
    near = {w.upper() for w in NEAR_MISS_WORDS} - plain_words
    assert near, "some near-misses must be new to the plain prompts"
    with_near = sum(bool(set(t.split()) & near) for t in train) / len(train)
    assert 0.5 * C.NEAR_MISS_SHARE < with_near < 2 * C.NEAR_MISS_SHARE
    assert not any(set(t.split()) & near for t in held_out)
    # Off means no extra random draw: the eval split and the eval streams are what they were.
    plain, off = PromptGenerator(np.random.default_rng(5)), PromptGenerator(np.random.default_rng(5), 0.0)
    assert [plain() for _ in range(50)] == [off() for _ in range(50)]
    assert {"heavy", "commuter", "often", "tone"} <= set(NEAR_MISSES) - set(NEAR_MISS_WORDS)


def test_eval_voices_and_rates_are_held_out_of_training() -> None:
    assert not set(C.ESPEAK_TRAIN_BASES) & set(C.ESPEAK_EVAL_BASES)
    assert not set(C.ESPEAK_TRAIN_VARIANTS) & set(C.ESPEAK_EVAL_VARIANTS)
    assert not set(C.FLITE_TRAIN_VOICES) & set(C.FLITE_EVAL_VOICES)
    train = C.synthetic_jobs(Path("/x"), "train", 400, seed=0)
    held_out = C.synthetic_jobs(Path("/x"), "eval", 400, seed=0)
    assert train == C.synthetic_jobs(Path("/x"), "train", 400, seed=0)
    train_voices = {j.voice for j in train}
    assert not train_voices & {j.voice for j in held_out}
    (eval_low, eval_high), = C.EVAL_RATE_BANDS
    assert all(not eval_low <= j.rate <= eval_high for j in train)
    assert all(eval_low <= j.rate <= eval_high for j in held_out)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_render_writes_16k_mono_and_manifest_roundtrips(tmp_path: Path) -> None:
    job = C.SynthJob(str(tmp_path), "train/000/000000.wav", "Hey computer, stop!", "espeak", "en-us+m3",
                     1.0, 50, 0)
    row = C.render(job)
    audio, rate = sf.read(tmp_path / row.path)
    assert rate == SAMPLE_RATE and audio.ndim == 1
    assert 0.3 < row.seconds < 3.0 and row.text == "HEY COMPUTER STOP"
    C.write_manifest(tmp_path / "train.jsonl", [row])
    assert C.read_manifest(tmp_path / "train.jsonl") == [row]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_render_resumes_keeping_a_clip_already_on_disk(tmp_path: Path) -> None:
    job = C.SynthJob(str(tmp_path), "train/000/000001.wav", "Lights on.", "espeak", "en-us+m3", 1.0, 50, 0)
    first = C.render(job)
    marker = np.full(8000, 0.25, dtype=np.float32)  # half a second that synthesis would never make
    sf.write(tmp_path / first.path, marker, SAMPLE_RATE, subtype="PCM_16")
    again = C.render(job)
    assert again.seconds == 0.5 and again.text == first.text
    np.testing.assert_allclose(sf.read(tmp_path / first.path)[0], marker, atol=1e-4)
    assert not list(tmp_path.rglob("*.partial.wav"))


def test_fsdd_import_resamples_and_holds_out_speaker(tmp_path: Path) -> None:
    src = tmp_path / "fsdd_src"
    src.mkdir()
    tone = (0.3 * np.sin(np.arange(4000) / 3)).astype(np.float32)
    for name in ("3_jackson_0.wav", "7_theo_12.wav"):
        sf.write(src / name, tone, 8000, subtype="PCM_16")
    splits = C.fsdd_utterances(src, tmp_path / "out")
    assert [r.text for r in splits["train"]] == ["THREE"]
    assert [(r.text, r.voice) for r in splits["eval"]] == [("SEVEN", "fsdd:theo")]
    audio, rate = sf.read(tmp_path / "out" / splits["eval"][0].path)
    assert rate == SAMPLE_RATE and len(audio) == 8000


def test_precise_import_labels_each_folder_and_leaves_out_the_packages_negatives(tmp_path: Path) -> None:
    from training.negative_speech import REAL

    data = tmp_path / "data"
    for folder, _ in REAL:
        (data / folder).mkdir(parents=True)
    tone = (0.3 * np.sin(np.arange(4800) / 3)).astype(np.float32)
    for folder in ("athena", "heychatterbox"):  # the package's negatives take each folder's first clips by name
        for n in range(dict(REAL)[f"precise/{folder}"] + 1):
            sf.write(data / "precise" / folder / f"{folder}-{n:02d}.flac", tone, 48000)
    rows = C.precise_utterances(data / "precise", tmp_path / "out")
    assert [(Path(r.path).name, r.text, r.source) for r in rows] == [
        ("athena-05.wav", "ATHENA", "precise"), ("heychatterbox-05.wav", "HEY CHATTERBOX", "precise")]
    audio, rate = sf.read(tmp_path / "out" / rows[0].path)
    assert rate == SAMPLE_RATE and len(audio) == 1600


def test_error_rates() -> None:
    assert edit_distance("KITTEN", "SITTING") == 3
    assert error_rate(["AB", "CD"], ["AB", "XD"]) == pytest.approx(0.25)
    assert error_rate(["HEY COMPUTER"], ["HEY"], words=True) == pytest.approx(0.5)


def test_manifests_drop_voices_reserved_for_evaluation_and_finetune_takes_real_clips_once(tmp_path: Path) -> None:
    """A corpus built before slt was reserved still holds it: no reader may train on it. Fine-tuning on
    two corpora takes each real recording once, since both copy the same ones."""
    from training.finetune import training_rows

    def row(name: str, voice: str, source: str) -> C.Utterance:
        return C.Utterance(f"train/{name}.flac", "stop", voice, 1.0, source, 0.5)

    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        C.write_manifest(folder / "train.jsonl", [row("kal", "flite:kal", "flite"), row("slt", "flite:slt", "flite"),
                                                  row("real", "wwb:x", "wwb")])
    assert [r.voice for r in C.read_manifest(first / "train.jsonl")] == ["flite:kal", "wwb:x"]
    rows = training_rows([first, second])
    assert [(Path(r.path).parent.parent.name, r.voice) for r in rows] == [("a", "flite:kal"), ("a", "wwb:x"), ("b", "flite:kal")]
    assert all(Path(r.path).is_absolute() for r in rows)
    extra = tmp_path / "c"  # real recordings the others lack come from whichever corpus holds them
    extra.mkdir()
    C.write_manifest(extra / "train.jsonl", [row("real", "wwb:x", "wwb"), row("athena", "precise:athena", "precise")])
    assert [r.voice for r in training_rows([first, extra])] == ["flite:kal", "wwb:x", "precise:athena"]


def test_a_sources_clips_repeat_as_told() -> None:
    """``training.finetune --repeat precise=1 --repeat kokoro=2``: the named sources as told, other real
    ones ``real_repeat`` times, other synthetic ones once."""
    import argparse

    from training.finetune import source_repeat
    from training.train import TrainConfig, repeat_of

    cfg = TrainConfig(source_repeat=(source_repeat("precise=1"), source_repeat("kokoro=2")))
    assert [repeat_of(s, cfg) for s in ("wwb", "precise", "kokoro", "espeak")] == [cfg.real_repeat, 1, 2, 1]
    for bad in ("precise", "precise=", "=2", "precise=two", "precise=-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            source_repeat(bad)
