"""Keywords trained from their text: synthesis from each voice source, a short training run, the
plain-data store and its fingerprint check, the second stage's wiring in the real pipeline, and the
command's refusals of bad input. Everything runs for real on the bundled model (the heads of the
wiring test are real heads whose output layer is set by hand, so that they always accept or reject)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from kwstream.assets import AUDIO_DIR, MODEL_DIR
from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.keywords.classifier.head import UNKNOWN_CLASS, ClassifierError, ClassifierHead, HeadConfig, SILENCE_CLASS
from kwstream.keywords.classifier.trained import (CANDIDATE_FLOOR, ConfirmedScorer, load_trained, save_trained, trained_names,
                                                  trained_scorer)
from kwstream.keywords.keyword_set import KeywordSet, typed_scorer
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.spotter import SpotterSettings
from kwstream.stream.detector import Detection
from kwstream.stream.pipeline import KeywordPipeline, run
from kwstream.train import synth, voices
from kwstream.train.fit import FitSettings
from kwstream.train.keywords import KeywordTrainSettings, train_keywords
from test_cli import assert_user_error, kwstream

DEMO = AUDIO_DIR / "demo_hey_stop.flac"


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(EncoderSettings(model=str(MODEL_DIR), threads=1))


def forced_head(encoder: Encoder, keywords: list[str], *winners: str) -> ClassifierHead:
    """A real head whose output always favours ``winners`` (keywords, or ``_unknown_``), evenly."""
    config = HeadConfig(classes=[*keywords, UNKNOWN_CLASS, SILENCE_CLASS], layer=encoder.layers,
                        hidden_size=encoder.encode(np.zeros(SAMPLE_RATE, np.float32), (encoder.layers,)).features[encoder.layers].shape[1], fingerprint=encoder.fingerprint, model_name=encoder.name,
                        thresholds=dict.fromkeys(keywords, 0.5))
    head = ClassifierHead(config)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.fill_(-10.0)
        for winner in winners:
            head.out.bias[config.classes.index(winner)] = 10.0
    return head.eval()


def detections(encoder: Encoder, keywords: KeywordSet) -> list[Detection]:
    pipeline = KeywordPipeline(keywords, encoder, SpotterSettings())
    return [e for e in run(pipeline, read_audio(DEMO)) if isinstance(e, Detection)]


def test_a_rejected_candidate_does_not_fire_and_an_accepted_one_fires_with_the_ctc_times(encoder: Encoder) -> None:
    plain = detections(encoder, KeywordSet(encoder, ["hey"]))
    assert [d.keyword for d in plain] == ["hey"]  # the demo says hey once
    accept = ConfirmedScorer(typed_scorer(encoder, ["hey"]), forced_head(encoder, ["hey", "stop"], "hey"))
    confirmed = detections(encoder, KeywordSet(encoder, [], [accept]))
    assert [(d.keyword, d.start, d.end) for d in confirmed] == [(d.keyword, d.start, d.end) for d in plain]
    assert [d.score for d in confirmed] == pytest.approx([d.score for d in plain], abs=1e-6)
    reject = ConfirmedScorer(typed_scorer(encoder, ["hey"]), forced_head(encoder, ["hey", "stop"], UNKNOWN_CLASS))
    assert detections(encoder, KeywordSet(encoder, [], [reject])) == []


def test_a_candidate_scores_its_ctc_score_times_the_heads_posterior(encoder: Encoder) -> None:
    """One score for both stages (not a veto at the head's threshold), so one threshold sweeps both:
    a head torn evenly between "hey" and unknown halves the CTC score, and at the default threshold
    the half-believed "hey" does not fire."""
    ctc = typed_scorer(encoder, ["hey"])
    torn = ConfirmedScorer(ctc, forced_head(encoder, ["hey", "stop"], "hey", UNKNOWN_CLASS))
    frames = encoder.encode(read_audio(DEMO), ctc.layers + torn.layers)
    [alone], [confirmed] = ctc.score_frames(frames), torn.score_frames(frames)
    assert alone.score >= CANDIDATE_FLOOR
    assert confirmed.score == pytest.approx(alone.score / 2, rel=1e-4)
    assert (confirmed.start_frame, confirmed.end_frame) == (alone.start_frame, alone.end_frame)
    keywords = KeywordSet(encoder, [], [torn])
    assert keywords.thresholds["hey"] > confirmed.score and detections(encoder, keywords) == []


def test_trained_scorer_confirms_all_the_heads_keywords_or_spots_alone(encoder: Encoder) -> None:
    head = forced_head(encoder, ["hey", "stop"], "stop")
    assert trained_scorer(head, encoder).keywords == ["hey", "stop"]
    assert trained_scorer(head, encoder, ["stop"]).keywords == ["stop"]
    alone = trained_scorer(head, encoder, alone=True)
    assert not isinstance(alone, ConfirmedScorer) and alone.keywords == ["hey", "stop"]
    with pytest.raises(ClassifierError, match="not lights"):
        ConfirmedScorer(typed_scorer(encoder, ["lights"]), head)


def test_store_round_trip_is_plain_data_and_refuses_another_model(encoder: Encoder, tmp_path: Path) -> None:
    torch.manual_seed(0)
    head = forced_head(encoder, ["hey"], "hey")
    folder = save_trained(head, tmp_path / "mine", {"note": "test"})
    assert trained_names(tmp_path) == ["mine"]
    with np.load(folder / "weights.npz", allow_pickle=False) as npz:  # no pickle anywhere
        assert set(npz.files) == set(head.state_dict())
    loaded = load_trained(folder, encoder)
    for name, tensor in head.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    with pytest.raises(ClassifierError, match="already exists"):
        save_trained(head, folder, {})
    metadata = json.loads((folder / "trained.json").read_text())
    metadata["config"]["fingerprint"] = "0123456789abcdef"
    (folder / "trained.json").write_text(json.dumps(metadata))
    with pytest.raises(ClassifierError, match="fingerprint 0123456789abcdef"):
        load_trained(folder, encoder)


def test_near_misses_and_voices_stay_off_the_reserved_and_held_out_ones() -> None:
    assert {"stopped", "stops", "stopping"} <= set(synth.near_misses("stop"))
    assert "hay" in synth.near_misses("hey") and "heyday" in synth.near_misses("hey")
    jobs = synth.utterances(["hey", "stop"], list(synth.SHARES), synth.SynthSettings(positives=200, near_misses=50, general=20))
    assert not any((j.engine, j.voice) in synth.RESERVED_VOICES for j in jobs)
    assert not any(voices.KOKORO_EVAL_STYLE in j.voice for j in jobs if j.engine == "kokoro")
    assert {j.engine for j in jobs} == set(synth.SHARES)
    assert all(j.label == j.target == "hey" for j in jobs[:200])
    assert not any(set(j.text.split()) & {"hey", "stop"} for j in jobs if j.label == UNKNOWN_CLASS)


@pytest.mark.slow
def test_every_available_voice_source_speaks_a_keyword_into_the_cache(tmp_path: Path) -> None:
    engines, _ = synth.available_engines()
    assert {"espeak", "flite"} <= set(engines)  # the Debian packages of .ci/apt-packages.txt
    cache = synth.SpeechCache(tmp_path)
    rng = np.random.default_rng(0)
    for engine in engines:
        utterance = synth.Utterance("stop", "stop", "stop", *synth.draw_voice(rng, [engine]))
        audio = cache.audio(utterance)
        assert 0.15 < len(audio) / SAMPLE_RATE < 1.6, engine
        assert 0.85 < np.abs(audio).max() <= 0.91
        assert cache.path(utterance).is_file()
        np.testing.assert_array_equal(cache.audio(utterance), audio)


def test_speech_synthesised_ahead_in_processes_is_the_speech_synthesised_here(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    jobs = [synth.Utterance(text, text, text, *synth.draw_voice(rng, ["espeak", "flite"])) for text in ("hey", "stop", "hey stop")]
    jobs.append(jobs[0])  # the same recipe twice
    here = list(synth.synthesised(jobs, synth.SpeechCache(tmp_path / "here"), workers=1))
    ahead = synth.SpeechCache(tmp_path / "ahead")
    for mine, theirs in zip(here, synth.synthesised(jobs, ahead, workers=2), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert all(ahead.path(j).is_file() for j in jobs)


def test_an_engine_that_fails_in_a_worker_process_fails_the_synthesis(tmp_path: Path) -> None:
    jobs = [synth.Utterance("hey", "hey", "hey", "espeak", voice, 1.0, 50) for voice in ("en-us", "nosuchvoice")]
    with pytest.raises(subprocess.CalledProcessError):
        list(synth.synthesised(jobs, synth.SpeechCache(tmp_path), workers=2))


@pytest.mark.slow
def test_a_few_training_steps_write_a_head_that_listen_uses(encoder: Encoder, tmp_path: Path) -> None:
    settings = KeywordTrainSettings(("hey", "stop"), tmp_path / "store" / "tiny",
                                    synth=synth.SynthSettings(positives=4, near_misses=3, general=2),
                                    speech_cache=tmp_path / "speech", feature_cache=tmp_path / "features",
                                    fit=FitSettings(epochs=2))
    notes: list[str] = []
    report = train_keywords(settings, encoder, notes.append)
    assert report.keywords == ["hey", "stop"] and report.utterances == 18
    head = load_trained(settings.out, encoder)
    assert head.config.keywords == ["hey", "stop"] and head.config.fingerprint == encoder.fingerprint
    listed = kwstream("keywords", "--store", str(tmp_path / "store"))
    assert "tiny" in listed.stdout.decode() and "hey,stop" in listed.stdout.decode()
    result = kwstream("listen", "--model", str(MODEL_DIR), "--keywords", "hey", "--trained", "tiny", "--store",
                      str(tmp_path / "store"), "--file", str(DEMO), "--fast", "--json", timeout=300)
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize(("args", "fragment"), [
    (["--keywords", "", "--out", "x"], "no keywords given"),
    (["--keywords", "h3y", "--out", "x"], "h3y"),
    (["--keywords", "hey,hey", "--out", "x"], "twice"),
    (["--keywords", "hey"], "--name"),
    (["--keywords", "hey", "--name", "a/b"], "keyword name 'a/b' must be"),
    (["--keywords", "hey", "--name", "x"], "must be 1-64 letters"),  # x: a path under tmp_path
    (["--data", "x", "--out", "x", "--workers", "2"], "--workers: only for --keywords"),
    (["--data", "x", "--out", "x", "--examples", "20", "--name", "n"], "--name, --examples: only for --keywords"),
    (["--data", "x"], "--data needs --out HEAD"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    args = [str(tmp_path / a) if a == "x" else a for a in args]
    assert_user_error(kwstream("train", *args, "--model", str(MODEL_DIR)), fragment)


def test_a_name_that_exists_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "trained.json").write_text("{}")
    assert_user_error(kwstream("train", "--keywords", "hey", "--name", "taken", "--store", str(tmp_path)), "already exists",
                      f"kwstream keywords --store {tmp_path} --remove taken")
    (tmp_path / "enrolled").mkdir()
    (tmp_path / "enrolled" / "keyword.json").write_text("{}")
    assert_user_error(kwstream("train", "--keywords", "hey", "--name", "enrolled", "--store", str(tmp_path)), "already exists",
                      f"kwstream keywords --store {tmp_path} --remove enrolled")
    (tmp_path / "folder").mkdir()
    assert_user_error(kwstream("train", "--keywords", "hey", "--out", str(tmp_path / "folder")), "already exists",
                      "remove it (delete it)")
    assert_user_error(kwstream("listen", "--keywords", "hey", "--trained", "nothing", "--store", str(tmp_path),
                               "--model", str(MODEL_DIR), "--file", str(DEMO)), "no trained keywords")
