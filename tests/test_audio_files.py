"""Recordings as files: what is refused before decoding, what is told after it, and samples a float file may hold."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile

from kwstream.assets import DEMO_AUDIO
from kwstream.audio.convert import full_scale
from kwstream.audio.io import audio_info, read_audio, truncated
from kwstream.audio.sources import AudioFile
from kwstream.errors import AudioInputError


@pytest.fixture(scope="module")
def demo_pcm() -> bytes:
    """The demo as headerless 16 kHz s16le: its first sample, -1 (0xFFFF), is also an MPEG frame sync."""
    return soundfile.read(DEMO_AUDIO, dtype="int16")[0].tobytes()


@pytest.mark.parametrize(("suffix", "why"), [(".raw", "no header (a .raw file)"), (".pcm", "not named .mp3"),
                                              (".snd", "not named .mp3"), (".wav", "not named .mp3"), ("", "not named .mp3")])
def test_headerless_pcm_is_refused_whatever_its_name_and_told_how_to_read_it_where_it_may_be_pcm(tmp_path, demo_pcm, suffix, why):
    raw = tmp_path / f"f{suffix}"
    raw.write_bytes(demo_pcm)
    with pytest.raises(AudioInputError, match=re.escape(why)) as refused:
        audio_info(raw)
    told = f"can be read from stdin: kwstream listen --file - < {raw}"
    assert str(refused.value).endswith(told) == (suffix != ".wav"), str(refused.value)


def test_a_file_libsndfile_does_not_know_is_not_told_to_be_piped_as_pcm(tmp_path):
    """An m4a piped in as raw PCM would be heard as noise."""
    m4a = tmp_path / "voice.m4a"
    m4a.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(2000))
    with pytest.raises(AudioInputError, match="no header libsndfile recognises") as refused:
        audio_info(m4a)
    assert "stdin" not in str(refused.value)


@pytest.mark.parametrize("name", ["tone.mp3", "TONE.MP3"])
def test_an_mp3_named_as_one_is_read(tmp_path, name):
    mp3 = tmp_path / name
    soundfile.write(mp3, 0.1 * np.sin(np.arange(16000) / 5), 16000, format="MP3")  # starts with a frame sync, no ID3
    assert audio_info(mp3).format == "MP3"


def test_an_mp3_with_an_id3_tag_is_read_whatever_its_name(tmp_path):
    tagged = tmp_path / "download"
    soundfile.write(tmp_path / "tone.mp3", 0.1 * np.sin(np.arange(16000) / 5), 16000, format="MP3")
    title = b"TIT2" + (5).to_bytes(4, "big") + b"\x00\x00\x03tone"  # an ID3v2.4 tag with a title, before the frames
    tagged.write_bytes(b"ID3\x04\x00\x00" + len(title).to_bytes(4, "big") + title + (tmp_path / "tone.mp3").read_bytes())
    assert audio_info(tagged).format == "MP3"


def test_full_scale_hears_nan_and_infinities_as_silence_and_clips_the_rest():
    got = full_scale(np.array([[np.nan, 0.5], [np.inf, -np.inf], [1e30, -3.0]], np.float32))
    assert got.dtype == np.float32 and got.tolist() == [[0.0, 0.5], [0.0, 0.0], [1.0, -1.0]]


def test_a_float_file_is_read_finite_and_in_full_scale_and_its_nan_told_once(tmp_path, caplog):
    audio = soundfile.read(DEMO_AUDIO, dtype="float32")[0]
    audio[8000:8100] = 1e30
    audio[8100] = np.nan
    audio[9000] = np.inf
    audio[40000] = -np.inf
    spoilt = tmp_path / "spoilt.wav"
    soundfile.write(spoilt, audio, 16000, subtype="FLOAT")
    with caplog.at_level("WARNING"):
        heard = np.concatenate(list(AudioFile(spoilt, realtime=False).samples()))
    assert len(heard) == len(audio) and np.isfinite(heard).all() and np.abs(heard).max() <= 1.0
    assert heard[8000] == 1.0 and heard[8100] == heard[9000] == heard[40000] == 0.0
    told = [r.getMessage() for r in caplog.records if "NaN" in r.getMessage()]
    assert told == [f"NaN or infinite samples at 0.51 s of {spoilt}: heard as silence"]


def test_reading_a_truncated_wav_whole_warns_that_it_ends_early(tmp_path, caplog):
    whole, cut = tmp_path / "whole.wav", tmp_path / "cut.wav"
    soundfile.write(whole, soundfile.read(DEMO_AUDIO)[0], 16000, subtype="PCM_16")
    cut.write_bytes(whole.read_bytes()[:100000])
    with caplog.at_level("WARNING"):
        read_audio(cut)
    assert [r.getMessage() for r in caplog.records] == [f"{cut}: truncated: header says 11.35 s, file holds 3.12 s"]


def test_a_wav_a_sample_short_of_its_header_is_not_called_truncated(tmp_path):
    """Within 10 ms of what the header says is a writer's rounding: exit 1 for it would be a false failure."""
    whole = tmp_path / "whole.wav"
    soundfile.write(whole, soundfile.read(DEMO_AUDIO)[0][:16000], 16000, subtype="PCM_16")
    short = tmp_path / "short.wav"
    short.write_bytes(whole.read_bytes()[:-2])
    long_cut = tmp_path / "cut.wav"
    long_cut.write_bytes(whole.read_bytes()[:-400])  # 12.5 ms short
    assert truncated(short) is None and truncated(long_cut) == "truncated: header says 1.00 s, file holds 0.99 s"
