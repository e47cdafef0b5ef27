"""The probe head of issue 31 (``training.probe``): it learns, its size holds across frame widths,
and its recall counts what it says. Random frames stand in for an extractor's (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.probe import HEAD_PARAMETERS, ProbeHead, ctc_frames, ctc_loss, recall_at
from training.vocab import encode

pytestmark = pytest.mark.slow  # the training workshop (training/, not installed)


@pytest.mark.parametrize("dims", [96, 256, 384])
def test_head_has_about_the_same_size_at_every_frame_width(dims: int) -> None:
    size = sum(p.numel() for p in ProbeHead(dims).parameters())
    assert abs(size - HEAD_PARAMETERS) < 0.01 * HEAD_PARAMETERS


def test_loss_falls_on_one_batch_seen_twice() -> None:
    torch.manual_seed(0)
    head = ProbeHead(384)
    x = torch.randn(4, 40, 384)
    labels = [encode(t) for t in ("JARVIS", "SIX", "HEY COMPUTER", "ALEXA")]
    batch = (x, torch.full((4,), 40), torch.as_tensor(sum(labels, [])), torch.as_tensor([len(t) for t in labels]))
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3)
    first = ctc_loss(head, *batch)
    first.backward()
    optimizer.step()
    assert ctc_loss(head, *batch).item() < first.item()


def test_ctc_needs_a_blank_between_repeated_letters() -> None:
    assert ctc_frames(encode("SIX")) == 3
    assert ctc_frames(encode("SEE")) == 4


def test_recall_counts_positives_above_the_others_one_percent_threshold() -> None:
    negatives = np.arange(200) / 200  # 0.0 .. 0.995: at 1 %, two may fire, so the threshold is 0.985
    scores = np.concatenate([negatives, [0.99, 0.98, 0.5, 0.999]])
    positive = np.arange(len(scores)) >= 200
    assert recall_at(scores, positive, 0.01) == pytest.approx(0.5)


def test_speech_embedding_steps_every_20_ms_when_asked() -> None:
    from kwstream.model.speech_embedding import WINDOW_S, SpeechEmbedding

    teacher = SpeechEmbedding()
    audio = (0.1 * np.random.default_rng(0).standard_normal(16000 * 2)).astype(np.float32)
    coarse, fine = teacher.features(audio), teacher.features(audio, step_frames=2)
    assert len(coarse) == pytest.approx((2.0 - WINDOW_S) / 0.08, abs=1.5)  # a window starts every 80 ms
    assert (len(coarse) - 1) * 4 < len(fine) <= len(coarse) * 4
    np.testing.assert_allclose(fine[::4], coarse, atol=1e-5)  # the same windows where both have one
