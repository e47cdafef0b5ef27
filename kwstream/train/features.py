"""Clips as 1 s of audio (augmented or not) and their hidden states, cached on disk.

Augmentation happens on the waveform, before the frozen encoder, so each augmented copy is its own
example with its own cached features: ``copies`` noisy, time-shifted versions per training clip,
drawn from a generator seeded by the clip's content and the copy's number, so a rerun rebuilds
exactly the same examples and finds them all in the cache. A cache entry's name is a hash of the
encoder's fingerprint, the layer, the source file's content and the recipe that made the audio;
change any of them and the entry is simply not found.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.model.encoder import Encoder
from kwstream.errors import KwstreamError
from kwstream.keywords.classifier.head import SILENCE_CLASS
from kwstream.train.dataset import Clip, Dataset

DITHER_RMS = 1e-4
"""A quiet room, not digital zero, around clean clips."""


@dataclass(frozen=True)
class AugmentSettings:
    clip_s: float = 1.0
    """Length of one example; shorter clips are padded, longer ones cut."""
    copies: int = 2
    """Noisy, shifted copies per training clip, besides the clean centred one."""
    snr_db: tuple[float, float] = (0.0, 20.0)
    """Range of speech-to-noise ratios of the copies, drawn uniformly."""
    silence_dbfs: tuple[float, float] = (-60.0, -20.0)
    """Range of levels of the background-only ``_silence_`` examples."""
    val_share_of_noise: float = 0.2
    """End of each background file kept for validation and the false-alarm measurement."""
    background_hop_s: float = 0.25
    """Step of the false-alarm measurement over held-out background, as the spotter's hop."""
    seed: int = 0


@dataclass(frozen=True)
class Example:
    """One 1 s piece of audio to encode: a clip (variant 0 clean and centred, others augmented)
    or a piece of background noise starting at ``offset_sample``."""

    label: str
    source: Path
    source_hash: str
    variant: int = 0
    offset_sample: int = 0


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kwstream" / "classifier-features"


def file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    except OSError as exc:
        raise KwstreamError(f"cannot read {path}: {exc.strerror or exc}") from None


class NoisePool:
    """The background files, each split into a training head and a held-out tail."""

    def __init__(self, paths: Sequence[Path], settings: AugmentSettings) -> None:
        self.paths = list(paths)
        self.hashes = [file_hash(p) for p in self.paths]
        self.audio = [read_audio(p) for p in self.paths]
        clip = int(settings.clip_s * SAMPLE_RATE)
        self.split = [int(len(a) * (1 - settings.val_share_of_noise)) for a in self.audio]
        short = [p.name for p, a, s in zip(self.paths, self.audio, self.split) if min(s, len(a) - s) < clip]
        if short:
            raise KwstreamError(f"background file(s) too short to split into training and validation pieces of "
                                f"{settings.clip_s} s: {', '.join(short)}")

    def piece(self, index: int, offset: int, samples: int) -> np.ndarray:
        return self.audio[index][offset:offset + samples]

    def training_piece(self, rng: np.random.Generator, samples: int) -> np.ndarray:
        index = int(rng.integers(len(self.audio)))
        offset = int(rng.integers(0, self.split[index] - samples + 1))
        return self.piece(index, offset, samples)


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) + 1e-9


class ExampleMaker:
    """Builds examples for a dataset and renders their audio."""

    def __init__(self, dataset: Dataset, settings: AugmentSettings) -> None:
        self.settings = settings
        self.samples = int(settings.clip_s * SAMPLE_RATE)
        self.noise = NoisePool(dataset.background, settings)
        self._hashes: dict[Path, str] = {}

    def _hash(self, path: Path) -> str:
        if path not in self._hashes:
            self._hashes[path] = file_hash(path)
        return self._hashes[path]

    def clips(self, clips: Sequence[Clip], copies: int) -> list[Example]:
        return [Example(c.label, c.path, self._hash(c.path), v) for c in tqdm(clips, desc="hashing", unit="file", leave=False)
                for v in range(copies + 1)]

    def silence(self, count: int, validation: bool) -> list[Example]:
        """``count`` random background pieces from the training heads (or validation tails)."""
        rng = np.random.default_rng([self.settings.seed, int(validation)])
        examples = []
        for n in range(count):
            i = int(rng.integers(len(self.noise.paths)))
            low, high = (self.noise.split[i], len(self.noise.audio[i])) if validation else (0, self.noise.split[i])
            offset = int(rng.integers(low, high - self.samples + 1))
            examples.append(Example(SILENCE_CLASS, self.noise.paths[i], self.noise.hashes[i], n + 1, offset))
        return examples

    def background_windows(self) -> list[Example]:
        """Every hop-spaced piece of the held-out tails, for the false-alarm measurement (variant 0: no gain change)."""
        hop = int(self.settings.background_hop_s * SAMPLE_RATE)
        return [Example(SILENCE_CLASS, p, h, 0, offset)
                for i, (p, h) in enumerate(zip(self.noise.paths, self.noise.hashes))
                for offset in range(self.noise.split[i], len(self.noise.audio[i]) - self.samples + 1, hop)]

    def background_hours(self) -> float:
        return sum(len(a) - s for a, s in zip(self.noise.audio, self.noise.split)) / SAMPLE_RATE / 3600

    def render(self, example: Example) -> np.ndarray:
        """The example's 1 s of audio."""
        rng = np.random.default_rng([self.settings.seed, int(example.source_hash[:12], 16), example.variant, example.offset_sample])
        if example.label == SILENCE_CLASS:
            index = self.noise.paths.index(example.source)
            audio = self.noise.piece(index, example.offset_sample, self.samples).copy()
            if example.variant:
                audio *= 10 ** (rng.uniform(*self.settings.silence_dbfs) / 20) / _rms(audio)
            return audio.astype(np.float32)
        speech = read_audio(example.source)
        canvas = rng.normal(0.0, DITHER_RMS, self.samples).astype(np.float32)
        slack = self.samples - len(speech)
        if slack < 0:  # too long: keep the middle, or a random part for a copy
            start = -slack // 2 if example.variant == 0 else int(rng.integers(0, -slack + 1))
            canvas += speech[start:start + self.samples]
            return canvas
        offset = slack // 2 if example.variant == 0 else int(rng.integers(0, slack + 1))
        canvas[offset:offset + len(speech)] += speech
        if example.variant:
            noise = self.noise.training_piece(rng, self.samples)
            canvas += noise * (_rms(speech) / _rms(noise) / 10 ** (rng.uniform(*self.settings.snr_db) / 20))
        return canvas


class FeatureCache:
    """Hidden states of examples on disk, one float16 ``.npy`` per example."""

    def __init__(self, root: Path, encoder: Encoder, layer: int, settings: AugmentSettings) -> None:
        encoder.check_layer(layer)
        self.encoder = encoder
        self.layer = layer
        self.recipe = json.dumps(asdict(settings), sort_keys=True)
        self.dir = Path(root) / encoder.fingerprint / f"layer{layer}"

    def path(self, example: Example) -> Path:
        key = hashlib.sha256(
            f"{self.recipe}|{example.label}|{example.source_hash}|{example.variant}|{example.offset_sample}".encode()
        ).hexdigest()[:32]
        return self.dir / key[:2] / f"{key}.npy"

    def features(self, examples: Sequence[Example], maker: ExampleMaker, desc: str) -> np.ndarray:
        """(examples, frames, hidden) float16, encoding only what the cache lacks."""
        paths = [self.path(e) for e in examples]
        missing = [i for i, p in enumerate(paths) if not p.is_file()]
        for i in tqdm(missing, desc=f"encoding {desc}", unit="clip", disable=not missing):
            frames = self.encoder.encode(maker.render(examples[i]), (self.layer,)).features[self.layer]
            _save_atomic(paths[i], frames.astype(np.float16))
        loaded = [np.load(p, allow_pickle=False) for p in tqdm(paths, desc=f"loading {desc}", unit="clip", leave=False)]
        return np.stack(loaded) if loaded else np.zeros((0, 0, 0), np.float16)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
    np.save(tmp, array, allow_pickle=False)
    tmp.replace(path)
