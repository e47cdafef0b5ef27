"""kwstream.audio.convert: the one place samples change format."""

from __future__ import annotations

import numpy as np

from kwstream.audio.convert import BlockFramer, StreamResampler, float_to_pcm16, pcm16_to_float, pcm32_to_float, to_mono


def test_to_mono_keeps_one_channel_as_it_is_and_averages_several():
    one = np.array([[0.25], [-0.5], [1.0]], np.float32)
    assert np.array_equal(to_mono(one), [0.25, -0.5, 1.0]) and np.shares_memory(to_mono(one), one)
    two = np.array([[1.0, 0.0], [-0.5, -0.25], [0.5, 0.5]], np.float32)
    mono = to_mono(two)
    assert mono.dtype == np.float32 and np.array_equal(mono, [0.5, -0.375, 0.5])


def test_pcm16_to_float_scales_by_32768_from_bytes_or_samples():
    samples = np.array([0, 1, -1, 16384, 32767, -32768], "<i2")
    want = np.array([0, 1 / 32768, -1 / 32768, 0.5, 32767 / 32768, -1.0], np.float32)
    for given in (samples, samples.tobytes()):
        got = pcm16_to_float(given)
        assert got.dtype == np.float32 and np.array_equal(got, want)


def test_pcm32_to_float_scales_by_2_to_the_31():
    samples = np.array([0, 1 << 30, -(1 << 31), (1 << 31) - 1], "<i4")
    assert pcm32_to_float(samples.tobytes()).tolist() == [0.0, 0.5, -1.0, np.float32((2**31 - 1) / 2**31)]


def test_float_to_pcm16_clips_and_every_16_bit_sample_survives_the_round_trip():
    got = float_to_pcm16(np.array([0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0], np.float32))
    assert got.dtype == np.dtype("<i2") and got.tolist() == [0, 16384, -16384, 32767, -32768, 32767, -32768]
    every = np.arange(-32768, 32768).astype("<i2")
    assert np.array_equal(float_to_pcm16(pcm16_to_float(every)), every)


def test_the_stream_resampler_gives_the_same_audio_whatever_the_chunks():
    audio = np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000).astype(np.float32)
    whole = StreamResampler(8000, 16000)
    once = np.concatenate((whole.push(audio), whole.finish()))
    chunked = StreamResampler(8000, 16000)
    pieces = [chunked.push(audio[i:i + 333]) for i in range(0, len(audio), 333)] + [chunked.finish()]
    assert len(once) == 16000 and np.allclose(np.concatenate(pieces), once, atol=1e-6)
    same = StreamResampler(16000, 16000)
    assert same.push(audio) is audio and len(same.finish()) == 0


def test_the_block_framer_cuts_any_chunks_into_the_same_whole_blocks():
    stream = np.arange(23, dtype=np.float32)
    framer = BlockFramer(4)
    got = []
    for size in (3, 0, 7, 1, 12):
        first, blocks = framer.push(stream[framer.received:framer.received + size])
        assert blocks.shape[1:] == (4,) and first == 4 * len(got)
        got += list(blocks)
    assert np.array_equal(np.stack(got), stream[:20].reshape(5, 4)) and framer.received == 23
