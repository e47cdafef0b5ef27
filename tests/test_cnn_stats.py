"""The first GroupNorm's statistics, computed outside the graph, equal those of the convolution itself,
for a narrow kernel at a high rate (v9's front end) and a wide one at a low rate (v10's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kwstream.model.cnn_stats import FirstLayerStats, RunningStatistics


@pytest.mark.parametrize(("channels", "kernel", "stride"), [(64, 10, 5), (256, 400, 160)])
def test_statistics_match_the_convolutions_output(channels: int, kernel: int, stride: int) -> None:
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(12_345).astype(np.float32)
    weight = (rng.standard_normal((channels, kernel)) / np.sqrt(kernel)).astype(np.float32)
    bias = rng.standard_normal(channels).astype(np.float32)
    out = torch.nn.functional.conv1d(torch.from_numpy(audio)[None, None], torch.from_numpy(weight)[:, None],
                                     torch.from_numpy(bias), stride=stride)[0].double().numpy()
    mean, var = FirstLayerStats(channels, stride, weight, bias).of(audio)
    np.testing.assert_allclose(mean, out.mean(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(var, out.var(axis=1), rtol=1e-4, atol=1e-5)


def test_without_a_group_norm_the_statistics_are_neutral() -> None:
    mean, var = FirstLayerStats(8, 5).of(np.ones(100, np.float32))
    assert not mean.any() and (var == 1).all()


def test_running_statistics_are_those_of_the_recent_audio_pooled() -> None:
    running = RunningStatistics(memory_s=1e9)  # nothing fades: the pooled statistics of all chunks
    rng = np.random.default_rng(0)
    chunks = [rng.normal(loc, scale, (200, 3)) for loc, scale in ((0, 1), (2, 3), (-1, 0.5))]
    for chunk in chunks:
        mean, var = running.blend(chunk.mean(0), chunk.var(0), len(chunk) / 100)
    pooled = np.concatenate(chunks)
    np.testing.assert_allclose(mean, pooled.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, pooled.var(0), rtol=1e-5)


def test_running_statistics_forget_old_audio() -> None:
    running = RunningStatistics(memory_s=1.0)
    running.blend(np.full(2, 10.0), np.ones(2), 5.0)
    mean, _ = running.blend(np.zeros(2), np.ones(2), 10.0)  # ten memories later the first is gone
    assert np.all(np.abs(mean) < 1e-3)
    mean, _ = RunningStatistics(memory_s=1.0).blend(np.full(2, 3.0), np.ones(2), 0.25)
    np.testing.assert_allclose(mean, 3.0)  # a first chunk alone gives its own
