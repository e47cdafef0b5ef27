"""A second teacher in fine-tuning: openWakeWord's speech embedding (``training.finetune --embedding-weight``).

Whisper's encoder teaches every block (``training.frontend``); this teacher is Google's speech embedding
(``kwstream.model.speech_embedding``), trained on far more voices to tell words apart, which read theo's real
8 kHz digits better than any of Whisper's blocks in the probe (CER 0.33 against 0.39 at a 20 ms step,
docs/model-v10-probe.md): the set versions 10-12 lag version 9 on. One block's output predicts it through a
linear map that only training keeps (the exported model is the plain wav2vec2). Targets come from the audio
the student hears (augmented), at the embedding's own 80 ms step, each beside the student frame at the
centre of its 0.76 s window.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kwstream.model.speech_embedding import DIMENSIONS, MIN_SAMPLES, STEP_S, WINDOW_S, SpeechEmbedding

FRAME_S = 0.02


def centre_frames(steps: int) -> np.ndarray:
    """The student frame (20 ms) at the centre of each of ``steps`` embedding windows from the audio's start."""
    return np.floor((np.arange(steps) * STEP_S + WINDOW_S / 2) / FRAME_S + 1e-9).astype(np.int64)


class EmbeddingTeacher(nn.Module):
    """The linear map from block ``block``'s output (``width`` wide) to the embedding, and the loss through it."""

    def __init__(self, width: int, block: int) -> None:
        super().__init__()
        self.block = block
        self.project = nn.Linear(width, DIMENSIONS)
        self._embedding = SpeechEmbedding(threads=1)

    def loss(self, outputs: list[torch.Tensor], audios: list[np.ndarray]) -> torch.Tensor:
        """1 - the mean cosine between the mapped frames and the embedding of each row's audio (``outputs``:
        the blocks' input, then each block's output, as ``training.frontend.student_forward`` gives them).
        Rows shorter than one embedding window add nothing."""
        hidden = outputs[self.block]
        predicted, targets = [], []
        for row, audio in enumerate(audios):
            if len(audio) < MIN_SAMPLES:
                continue
            steps = self._embedding.features(audio)
            frames = centre_frames(len(steps))
            keep = frames < hidden.shape[1]
            predicted.append(hidden[row, frames[keep]])
            targets.append(torch.from_numpy(steps[keep]))
        if not predicted:
            return hidden.new_zeros(())
        return 1.0 - nn.functional.cosine_similarity(self.project(torch.cat(predicted)), torch.cat(targets), dim=-1).mean()
