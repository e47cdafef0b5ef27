"""Fast checks of the waveform augmentations (no corpus, no network)."""

from __future__ import annotations

import numpy as np
import pytest

from training import augment as A
from training.vocab import SAMPLE_RATE

pytestmark = pytest.mark.slow  # the training workshop (training/, not installed)


def _tone(seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _band_energy(audio: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 30.0])
def test_add_noise_hits_requested_snr(snr_db: float) -> None:
    clean = _tone()
    noise = A.white_noise(np.random.default_rng(0), len(clean))
    noisy = A.add_noise(clean, noise, snr_db)
    measured = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.01)
    assert noisy.dtype == np.float32


def test_pink_noise_has_more_low_than_high_energy() -> None:
    pink = A.pink_noise(np.random.default_rng(1), SAMPLE_RATE)
    assert _band_energy(pink, 50, 500) > 5 * _band_energy(pink, 4000, 4450)


def test_babble_uses_pool_and_falls_back_to_white_noise() -> None:
    rng = np.random.default_rng(2)
    babble = A.babble_noise(rng, 8000, [_tone(0.3, 200.0), _tone(0.2, 300.0)])
    assert babble.shape == (8000,) and np.isfinite(babble).all() and babble.std() > 0
    assert A.babble_noise(rng, 100, []).shape == (100,)


def test_speed_changes_length_pitch_keeps_it() -> None:
    audio = _tone()
    assert len(A.resample_speed(audio, 1.25)) == pytest.approx(len(audio) / 1.25, rel=0.01)
    shifted = A.pitch_shift(audio, 12.0)
    assert len(shifted) == len(audio)
    # an octave up moves the 440 Hz tone to 880 Hz
    assert _band_energy(shifted, 800, 960) > 5 * _band_energy(shifted, 400, 480)


def test_reverb_keeps_length_and_peak_and_spreads_energy() -> None:
    click = np.zeros(SAMPLE_RATE, dtype=np.float32)
    click[100] = 0.8
    ir, = A.room_impulse_responses(np.random.default_rng(3), 1, rt60_range=(0.4, 0.4))
    wet = A.reverberate(click, ir)
    assert len(wet) == len(click)
    assert np.abs(wet).max() == pytest.approx(0.8, rel=1e-4)
    assert np.count_nonzero(np.abs(wet[200:]) > 1e-4) > 1000


def test_band_limit_removes_energy_above_4khz() -> None:
    audio = _tone(freq=300.0) + _tone(freq=6000.0)
    limited = A.band_limit(audio)
    assert len(limited) == len(audio)
    assert _band_energy(limited, 5900, 6100) < 1e-3 * _band_energy(audio, 5900, 6100)
    assert _band_energy(limited, 250, 350) > 0.9 * _band_energy(audio, 250, 350)


def test_gain_clips_and_dc_offset_shifts_mean() -> None:
    loud = A.change_gain(_tone(), 20.0)
    assert np.abs(loud).max() <= 1.0
    assert A.dc_offset(_tone(), 0.03).mean() == pytest.approx(0.03, abs=1e-3)


def test_augmenter_is_reproducible_with_the_same_seed() -> None:
    config = A.AugmentConfig(p_speed=1, p_pitch=1, p_reverb=1, p_band_limit=1, p_noise=1, p_gain=1, p_dc=1)
    augmenter = A.Augmenter(config, babble_pool=[_tone(0.5, 250.0)])
    first = augmenter(_tone(), np.random.default_rng(7))
    second = augmenter(_tone(), np.random.default_rng(7))
    other = augmenter(_tone(), np.random.default_rng(8))
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and np.isfinite(first).all()
    assert len(first) != len(other) or not np.array_equal(first, other)
