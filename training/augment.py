"""On-the-fly waveform augmentation so a model trained on clean synthetic speech copes with real microphones.

All functions take and return float32 mono audio at 16 kHz and draw randomness only from the
numpy Generator they are given, so a seeded run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr

from training.vocab import SAMPLE_RATE

NoiseSource = Callable[[np.random.Generator, int], np.ndarray]


def white_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f noise by shaping white noise in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return (pink / (pink.std() + 1e-9)).astype(np.float32)


def babble_noise(rng: np.random.Generator, n: int, pool: list[np.ndarray], talkers: tuple[int, int] = (3, 7)) -> np.ndarray:
    """Sum of several other utterances at random offsets: the hardest noise for a keyword spotter."""
    out = np.zeros(n, dtype=np.float32)
    if not pool:
        return white_noise(rng, n)
    for _ in range(int(rng.integers(*talkers))):
        clip = pool[int(rng.integers(len(pool)))]
        clip = np.tile(clip, int(np.ceil(n / max(len(clip), 1))) + 1)
        start = int(rng.integers(max(len(clip) - n, 1)))
        out += clip[start:start + n] / (clip.std() + 1e-9)
    return out


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix noise into audio at the given signal-to-noise ratio (power ratio, dB)."""
    signal_power = float(np.mean(audio**2)) + 1e-12
    noise_power = float(np.mean(noise**2)) + 1e-12
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return (audio + scale * noise[: len(audio)]).astype(np.float32)


def change_gain(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale and hard-clip at full scale, as an overdriven microphone would."""
    return np.clip(audio * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def resample_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play back `factor` times faster: tempo and pitch change together (Kaldi-style speed perturbation)."""
    return soxr.resample(audio, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


def pitch_shift(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch (and formants) while keeping the duration.

    Resampling moves pitch and tempo; overlap-add time stretching with 32 ms Hann windows restores
    the original length. Crude (no phase alignment), but cheap and good enough as augmentation.
    """
    factor = 2 ** (semitones / 12)
    shifted = resample_speed(audio, factor)
    return _ola_stretch(shifted, len(audio))


def _ola_stretch(audio: np.ndarray, target_len: int, frame: int = 512) -> np.ndarray:
    hop_out = frame // 4
    n_frames = max(1, int(np.ceil((target_len - frame) / hop_out)) + 1)
    hop_in = (len(audio) - frame) / max(n_frames - 1, 1)
    window = np.hanning(frame).astype(np.float32)
    out = np.zeros(target_len + frame, dtype=np.float32)
    norm = np.zeros_like(out)
    padded = np.pad(audio, (0, frame))
    for i in range(n_frames):
        src = int(round(i * hop_in))
        dst = i * hop_out
        out[dst:dst + frame] += padded[src:src + frame] * window
        norm[dst:dst + frame] += window
    return (out / np.maximum(norm, 1e-3))[:target_len]


def synthetic_impulse_response(rng: np.random.Generator, rt60: float, direct_ratio_db: float) -> np.ndarray:
    """Exponentially decaying noise tail after a direct-path spike: a cheap room model."""
    n = int(SAMPLE_RATE * rt60)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[0] = 0.0
    tail *= 10 ** (-direct_ratio_db / 20) / (np.sqrt(np.sum(tail**2)) + 1e-9)
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(audio: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
    """FFT convolution, cut to the input length and rescaled to the input's peak."""
    n = len(audio) + len(impulse_response) - 1
    size = 1 << (n - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(impulse_response, size), size)[: len(audio)]
    peak_in = float(np.abs(audio).max()) + 1e-9
    return (wet * peak_in / (np.abs(wet).max() + 1e-9)).astype(np.float32)


def band_limit(audio: np.ndarray, rate: int = 8_000) -> np.ndarray:
    """Round trip through a lower sample rate: telephone / cheap-microphone bandwidth."""
    low = soxr.resample(audio, SAMPLE_RATE, rate)
    return soxr.resample(low, rate, SAMPLE_RATE)[: len(audio)].astype(np.float32)


def dc_offset(audio: np.ndarray, offset: float) -> np.ndarray:
    return (audio + offset).astype(np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """Probability and range of each augmentation; applied independently in a fixed order."""

    p_speed: float = 0.4
    speed_range: tuple[float, float] = (0.85, 1.15)
    p_pitch: float = 0.15
    pitch_semitones: tuple[float, float] = (-3.0, 3.0)
    p_reverb: float = 0.3
    rt60_range: tuple[float, float] = (0.1, 0.7)
    direct_ratio_db: tuple[float, float] = (-3.0, 10.0)
    p_band_limit: float = 0.15
    p_noise: float = 0.6
    snr_db: tuple[float, float] = (0.0, 30.0)
    noise_weights: tuple[float, float, float] = (0.3, 0.3, 0.4)  # white, pink, babble
    p_gain: float = 0.5
    gain_db: tuple[float, float] = (-20.0, 10.0)
    p_dc: float = 0.1
    dc_range: float = 0.05


class Augmenter:
    """Applies the configured chain; `babble_pool` holds other corpus utterances for babble noise."""

    def __init__(self, config: AugmentConfig, babble_pool: list[np.ndarray] | None = None) -> None:
        self.config = config
        self.babble_pool = babble_pool or []

    def _noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        kind = rng.choice(3, p=np.asarray(self.config.noise_weights) / sum(self.config.noise_weights))
        if kind == 0:
            return white_noise(rng, n)
        if kind == 1:
            return pink_noise(rng, n)
        return babble_noise(rng, n, self.babble_pool)

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        audio = audio.astype(np.float32)
        if rng.random() < c.p_speed:
            audio = resample_speed(audio, float(rng.uniform(*c.speed_range)))
        if rng.random() < c.p_pitch:
            audio = pitch_shift(audio, float(rng.uniform(*c.pitch_semitones)))
        if rng.random() < c.p_reverb:
            ir = synthetic_impulse_response(rng, float(rng.uniform(*c.rt60_range)), float(rng.uniform(*c.direct_ratio_db)))
            audio = reverberate(audio, ir)
        if rng.random() < c.p_band_limit:
            audio = band_limit(audio)
        if rng.random() < c.p_noise:
            audio = add_noise(audio, self._noise(rng, len(audio)), float(rng.uniform(*c.snr_db)))
        if rng.random() < c.p_gain:
            peak = float(np.abs(audio).max()) + 1e-9
            audio = change_gain(audio / peak * 0.5, float(rng.uniform(*c.gain_db)))
        if rng.random() < c.p_dc:
            audio = dc_offset(audio, float(rng.uniform(-c.dc_range, c.dc_range)))
        return audio
