"""Voice activity gate: webrtcvad on fixed frames, with pre-roll and hangover.

Fed one chunk at a time, it answers with events in absolute sample indices (``SpeechStart``,
``SpeechEnd``), in the manner of silero-vad's VADIterator. Pre-roll moves each start back so word
onsets are kept; hangover keeps a span open through short pauses so word endings are kept too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

from kwstream.audio.convert import BlockFramer, float_to_pcm16
from kwstream.audio.io import SAMPLE_RATE


@dataclass(frozen=True)
class VadSettings:
    """How speech is told from silence."""

    enabled: bool = True
    aggressiveness: int = 2
    """webrtcvad mode, 0 (keeps most audio) to 3 (drops most non-speech)."""
    frame_ms: int = 30
    """webrtcvad frame: 10, 20 or 30 ms."""
    trigger_frames: int = 2
    """Voiced frames among the last ``trigger_window_frames`` that open a span."""
    trigger_window_frames: int = 3
    preroll_ms: int = 300
    """Audio kept before the first voiced frame."""
    hangover_ms: int = 400
    """Unvoiced time after which a span closes (also kept after the last voiced frame)."""
    min_speech_dbfs: float = -55.0
    """Frames quieter than this (RMS) are never speech, whatever webrtcvad says."""

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"VAD aggressiveness must be 0-3, got {self.aggressiveness}")
        if self.frame_ms not in (10, 20, 30):
            raise ValueError(f"VAD frame must be 10, 20 or 30 ms, got {self.frame_ms}")
        if not 1 <= self.trigger_frames <= self.trigger_window_frames:
            raise ValueError("need 1 <= trigger_frames <= trigger_window_frames")
        if min(self.preroll_ms, self.hangover_ms) < 0:
            raise ValueError("pre-roll and hangover must not be negative")


@dataclass(frozen=True)
class SpeechStart:
    sample: int


@dataclass(frozen=True)
class SpeechEnd:
    sample: int


VadEvent = SpeechStart | SpeechEnd


class VadGate:
    """Turns a stream of samples into speech spans; ``push`` returns the events each chunk causes.

    A stream is taken to be framed by quiet, as a live one is: a first span that reaches back to the
    stream's start begins a pre-roll before it, and a span still open when the stream ends closes a
    hangover after its last voiced frame, past the last sample. Their samples outside the stream
    read as silence (``KeywordPipeline``). A recording that opens or ends on a word (a clip cut
    tight, as datasets and voice notes are) is then heard as the word said in a quiet room: without
    that silence the model cannot find it (FSDD clips: 0 of 20 digits found; with it, docs/how-it-works.md).
    webrtcvad's first frames are trusted as they come: holding spans back for a warm-up of 150 ms while it adapts
    lost short words that open a recording and held off no false detection over noise, only a few milliseconds of
    encoding where a stream opens on noise (docs/how-it-works.md)."""

    def __init__(self, settings: VadSettings = VadSettings()) -> None:
        self.settings = settings
        self._frame = SAMPLE_RATE * settings.frame_ms // 1000
        self._preroll = SAMPLE_RATE * settings.preroll_ms // 1000
        self._hangover_frames = max(1, -(-settings.hangover_ms // settings.frame_ms))  # at least hangover_ms
        self._min_rms = 10 ** (settings.min_speech_dbfs / 20)
        self.reset()

    def reset(self) -> None:
        """Forget all audio seen so far (webrtcvad's adaptive state included)."""
        self._vad = webrtcvad.Vad(self.settings.aggressiveness)
        self._framer = BlockFramer(self._frame)
        self._recent: deque[bool] = deque(maxlen=self.settings.trigger_window_frames)
        self._in_speech = not self.settings.enabled
        self._started = False
        self._last_end: int | None = None  # where the previous span ended; None before the first
        self._unvoiced_run = 0
        self.voiced_samples = 0
        self._ended = False

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def push(self, samples: np.ndarray) -> list[VadEvent]:
        """Feed the next samples of the stream (float32 in [-1, 1])."""
        if self._ended:  # its span ended past its last sample: more audio would be heard as if after that quiet
            raise RuntimeError("the stream was flushed: reset() before pushing another")
        if not self.settings.enabled:
            events: list[VadEvent] = [] if self._started else [SpeechStart(self._framer.received - self._preroll)]
            self._started = True
            self._framer.push(samples)  # only counted: every sample is speech
            self.voiced_samples += len(samples)
            return events
        events = []
        position, frames = self._framer.push(samples)
        n_frames = len(frames)
        loud = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1)) >= self._min_rms
        pcm = float_to_pcm16(frames)
        for i in range(n_frames):
            frame_start = position + i * self._frame
            # webrtcvad must see every frame to adapt, even those whose answer we overrule
            voiced = self._vad.is_speech(pcm[i].tobytes(), SAMPLE_RATE) and bool(loud[i])
            self._recent.append(voiced)
            if not self._in_speech:
                if sum(self._recent) >= self.settings.trigger_frames:
                    first_voiced = list(self._recent).index(True)
                    onset = frame_start - (len(self._recent) - 1 - first_voiced) * self._frame
                    start = onset - self._preroll
                    if self._last_end is not None:
                        start = max(start, self._last_end)
                    elif start < 0:  # the quiet before the stream (see the class)
                        start = -self._preroll
                    events.append(SpeechStart(start))
                    self._in_speech = True
                    self._unvoiced_run = 0
            else:
                self._unvoiced_run = 0 if voiced else self._unvoiced_run + 1
                if self._unvoiced_run >= self._hangover_frames:
                    end = frame_start + self._frame
                    events.append(SpeechEnd(end))
                    self._in_speech = False
                    self._last_end = end
                    self._recent.clear()
            if self._in_speech:
                self.voiced_samples += self._frame
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: an open span closes where the quiet after the stream would close it (see the class). The
        stream has ended: ``reset()`` before pushing another."""
        if self._ended:
            return []
        events: list[VadEvent] = []
        if not self.settings.enabled:
            if self._started:
                events = [SpeechEnd(self._framer.received + self._hangover_frames * self._frame)]
        elif self._in_speech:
            heard = self.voiced_samples
            # the pending partial frame, then enough quiet to close the span (silence is never speech: ``min_speech_dbfs``)
            events = self.push(np.zeros((self._hangover_frames + 2) * self._frame, np.float32))
            self.voiced_samples = heard
        self._ended = True
        return events
