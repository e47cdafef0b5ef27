"""A second teacher in fine-tuning: openWakeWord's speech embedding (``training.finetune --embedding-weight``).

Whisper's encoder teaches every block (``training.frontend``); this teacher is Google's speech embedding
(``kwstream.model.speech_embedding``), trained on far more voices to tell words apart. In the probe
(docs/model-v10-probe.md) it read theo's real 8 kHz digits better than any of Whisper's blocks when stepped every
20 ms (CER 0.33 against 0.39; at its own 80 ms step, used here, 0.49): theo is the set versions 10-12 lag version 9
on. One block's output predicts it through a linear map that only training keeps (the exported model is the
plain wav2vec2). Targets come from the audio the student hears (augmented), at the embedding's own 80 ms step,
each beside the student frame whose receptive field is centred nearest its window's centre.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2Config

from kwstream.model.speech_embedding import DIMENSIONS, MEL_FRAME, MEL_HOP, MIN_SAMPLES, STEP_FRAMES, WINDOW_FRAMES, SpeechEmbedding
from training.frontend import receptive_field


def centre_frames(steps: int, receptive: int, hop: int) -> np.ndarray:
    """For each of ``steps`` embedding windows from the audio's start, the student frame (each seeing ``receptive``
    samples, ``hop`` apart) centred nearest the window's centre."""
    centres = np.arange(steps) * STEP_FRAMES * MEL_HOP + ((WINDOW_FRAMES - 1) * MEL_HOP + MEL_FRAME - 1) / 2
    return np.maximum(np.round((centres - (receptive - 1) / 2) / hop), 0).astype(np.int64)


class EmbeddingTeacher(nn.Module):
    """The linear map from block ``block``'s output to the embedding, and the loss through it."""

    def __init__(self, config: Wav2Vec2Config, block: int) -> None:
        super().__init__()
        if not 1 <= block <= config.num_hidden_layers:
            raise ValueError(f"the embedding teacher needs a block from 1 to {config.num_hidden_layers}, not {block}")
        self.block = block
        self.receptive, self.hop = receptive_field(config)
        self.project = nn.Linear(config.hidden_size, DIMENSIONS)
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
            frames = centre_frames(len(steps), self.receptive, self.hop)
            keep = frames < hidden.shape[1]
            predicted.append(hidden[row, frames[keep]])
            targets.append(torch.from_numpy(steps[keep]))
        if not predicted:
            return hidden.new_zeros(())
        return 1.0 - nn.functional.cosine_similarity(self.project(torch.cat(predicted)), torch.cat(targets), dim=-1).mean()
