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


def room_impulse_responses(rng: np.random.Generator, count: int, rt60_range: tuple[float, float],
                           max_order: int = 20) -> list[np.ndarray]:
    """Impulse responses of simulated shoebox rooms (pyroomacoustics' image source method).

    Each room has random dimensions (3x3x2.4 to 9x8x3.5 m), a random RT60 (the walls' absorption
    from Sabine's formula; a room too large for its RT60 is drawn again) and a random source and microphone position; reflections are computed up
    to `max_order`, with randomised image positions so that rooms do not ring (Di Carlo et al.).
    """
    import pyroomacoustics as pra

    responses: list[np.ndarray] = []
    while len(responses) < count:
        dims = rng.uniform((3.0, 3.0, 2.4), (9.0, 8.0, 3.5))
        try:
            absorption, order = pra.inverse_sabine(float(rng.uniform(*rt60_range)), dims)
        except ValueError:  # too short an RT60 for so large a room: draw another
            continue
        room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(order, max_order),
                           use_rand_ism=True, max_rand_disp=0.05)
        room.add_source(rng.uniform(0.5, dims - 0.5))
        room.add_microphone(rng.uniform(0.5, dims - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float32)
        responses.append(rir[int(np.argmax(np.abs(rir))):])  # start at the direct path: no added delay
    return responses


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
    p_reverb: float = 0.35
    rt60_range: tuple[float, float] = (0.1, 0.8)
    rooms: int = 300  # simulated once, when the augmenter is built
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

    def __init__(self, config: AugmentConfig, babble_pool: list[np.ndarray] | None = None, seed: int = 0) -> None:
        self.config = config
        self.babble_pool = babble_pool or []
        self.rooms = room_impulse_responses(np.random.default_rng([seed, 7]), config.rooms, config.rt60_range)

    def _noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        kind = rng.choice(3, p=np.asarray(self.config.noise_weights) / sum(self.config.noise_weights))
        if kind == 0:
            return white_noise(rng, n)
        if kind == 1:
            return pink_noise(rng, n)
        return babble_noise(rng, n, self.babble_pool)

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(audio, rng)[0]

    def apply(self, audio: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """The augmented audio and its speed factor (1.0 unless speed perturbation ran): timing for distillation."""
        c = self.config
        audio = audio.astype(np.float32)
        speed = 1.0
        if rng.random() < c.p_speed:
            speed = float(rng.uniform(*c.speed_range))
            audio = resample_speed(audio, speed)
        if rng.random() < c.p_pitch:
            audio = pitch_shift(audio, float(rng.uniform(*c.pitch_semitones)))
        if rng.random() < c.p_reverb:
            audio = reverberate(audio, self.rooms[int(rng.integers(len(self.rooms)))])
        if rng.random() < c.p_band_limit:
            audio = band_limit(audio)
        if rng.random() < c.p_noise:
            audio = add_noise(audio, self._noise(rng, len(audio)), float(rng.uniform(*c.snr_db)))
        if rng.random() < c.p_gain:
            peak = float(np.abs(audio).max()) + 1e-9
            audio = change_gain(audio / peak * 0.5, float(rng.uniform(*c.gain_db)))
        if rng.random() < c.p_dc:
            audio = dc_offset(audio, float(rng.uniform(-c.dc_range, c.dc_range)))
        return audio, speed
