"""Encode each speech span about once: overlapping chunks with context, and a rolling frame buffer.

Encoding a whole 1.5 s window every 0.25 s would put every sample through the model six times.
Instead each step encodes only the audio that arrived since the last step, plus context on both
sides, and keeps only the frames whose context is complete:

    |<- left context ->|<-- frames that become final -->|<- right context ->|
    (final already,      (they saw left_context before   (provisional: scored now,
     attended to as       and right_context after them)   encoded again next step
     context only)                                         once their future arrives)

Final frames go into a rolling buffer; a scoring window is read from the buffer plus the newest
step's provisional frames, so a keyword is scored as soon as its audio is in (latency stays one
hop) and rescored once its right context arrives.

Nothing is computed twice but the provisional frames' transformer layers. Each frame's CNN output
is computed once, when its audio arrives, and handed on from chunk to chunk; the left context's
frames also lend the states every transformer layer gave them in the chunk where they became
final, and the new chunk's frames attend to those (``kwstream.model.stages``). So per step the CNN sees
``hop`` of new audio and the transformer's layers ``hop + right_context``. A reused frame keeps what
its chunk made of it: the normalisation statistics of that chunk's audio and, through attention,
the context that chunk had. So a span's first chunks, shorter than its right context, hand on
nothing: CNN frames normalised over a quarter second of speech onset, kept for the rest of the
word, cost spoken digits (FSDD, one word per span) a third of their recall (0.61 -> 0.40).

Frames are counted from the start of their span, on the grid of the model's CNN (frame i covers
``samples_per_frame * i`` onwards), so frames of different chunks line up exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from kwstream.model.cnn_stats import RunningStatistics
from kwstream.model.encoder import EncodedFrames, Encoder, cnn_frames, reusable_frames


@dataclass(frozen=True)
class ChunkStep:
    """One step of a span's chunking, in frames counted from the span's start."""

    first_frame: int
    """The first frame of the audio it reads (its left context included)."""
    total_frames: int
    """One past its last frame: its audio makes frames ``[first_frame, total_frames)``."""
    reused_frames: int
    """Frames from ``first_frame`` on whose CNN output the previous chunk hands on."""
    attended_frames: int
    """Of those, the ones final already, whose states (from their own chunks) it attends to."""
    final_from: int
    final_to: int
    """The frames ``[final_from, final_to)`` become final in it."""


def first_frame(final_to: int, left_frames: int) -> int:
    """Where a step's audio starts: ``left_frames`` of context before the first frame not yet final."""
    return max(0, final_to - left_frames)


def chunk_step(final_to: int, previous_total: int | None, stop: int, *, left_frames: int, right_samples: int,
               conv: Sequence[tuple[int, int]]) -> ChunkStep:
    """The step ``ChunkedEncoder`` takes when the span's audio reaches sample ``stop``, after earlier
    steps made frames before ``final_to`` final and the previous chunk's audio made
    ``previous_total`` frames (None: no previous chunk). Training replays these steps
    (``training.stream_shaped``), so this is the one place that says what a chunk reads and keeps."""
    first = first_frame(final_to, left_frames)
    made = cnn_frames(stop - first * math.prod(stride for _, stride in conv), conv)
    context = final_to - first
    reused = reusable_frames(made, previous_total - first) if previous_total is not None and context > 0 else 0
    total = first + made
    return ChunkStep(first, total, reused, min(context, reused), final_to,
                     max(final_to, min(total, cnn_frames(stop - right_samples, conv))))


class ChunkedEncoder:
    """Frames of the current speech span, each encoded with ``left_context_samples`` before it and
    ``right_context_samples`` after it (fewer at the span's start and at the newest audio)."""

    def __init__(self, encoder: Encoder, layers: tuple[int, ...], left_context_samples: int,
                 right_context_samples: int, keep_samples: int, statistics_memory_s: float = 0.0) -> None:
        """
        Args:
            encoder: the model.
            layers: hidden-state layers to keep besides the log-probabilities.
            left_context_samples: audio before the new frames that they attend to.
            right_context_samples: audio after a frame that must arrive before it is final.
            keep_samples: how far back scoring windows reach (the window length).
            statistics_memory_s: normalise each chunk's first layer with the statistics of the voiced
                audio heard so far, fading over this many seconds, across spans
                (``RunningStatistics``); 0: with the chunk's own.
        """
        self.encoder = encoder
        self.layers = layers
        spf = encoder.samples_per_frame
        self._left_frames = -(-left_context_samples // spf)
        self._right_samples = right_context_samples
        self._keep_frames = -(-keep_samples // spf) + 1
        self._running = RunningStatistics(statistics_memory_s) if statistics_memory_s > 0 else None
        self.encoded_samples = 0
        """Audio whose frames the transformer computed so far (provisional ones counted each time)."""
        self.start_span(0)

    def start_span(self, span_start_sample: int) -> None:
        """Forget the previous span; frames are counted from ``span_start_sample``."""
        self._span_start = span_start_sample
        self._final: EncodedFrames | None = None  # the newest final frames, up to frame self._final_to
        self._final_to = 0
        self._previous: EncodedFrames | None = None  # the previous chunk (CNN output and states too)
        self._previous_from = 0  # its first frame

    @property
    def _final_from(self) -> int:
        """The first frame still in the buffer of final frames."""
        return self._final_to - (len(self._final) if self._final is not None else 0)

    @property
    def oldest_needed(self) -> int:
        """The earliest sample the next step may read."""
        return self._span_start + first_frame(self._final_to, self._left_frames) * self.encoder.samples_per_frame

    def frames(self, read: Callable[[int, int], np.ndarray], start_sample: int, stop_sample: int) -> tuple[int, EncodedFrames]:
        """Encode what is new up to ``stop_sample`` and return the frames that lie inside
        ``[start_sample, stop_sample)``, with the sample where the first of them begins.

        ``read(a, b)`` returns the span's samples [a, b); calls must come in increasing ``stop_sample``.
        """
        spf = self.encoder.samples_per_frame
        s0 = self._span_start
        previous_total = self._previous_from + len(self._previous) if self._previous is not None else None
        step = chunk_step(self._final_to, previous_total, stop_sample - s0, left_frames=self._left_frames,
                          right_samples=self._right_samples, conv=self.encoder.conv)
        first = step.first_frame
        audio = read(s0 + first * spf, stop_sample)
        if len(audio) != stop_sample - s0 - first * spf:
            raise ValueError(f"read({s0 + first * spf}, {stop_sample}) returned {len(audio)} samples")
        reuse = self._previous.slice(first - self._previous_from, len(self._previous)) if step.reused_frames else None
        chunk = self.encoder.encode(audio, self.layers, reuse, context_frames=step.final_from - first, keep_states=True,
                                    running=self._running)
        self._previous, self._previous_from = chunk, first
        chunk = replace(chunk, cnn=None, states=None)  # scorers and the frame buffer need none of it
        attended = step.attended_frames if self.encoder.attends_to_states else 0
        self.encoded_samples += (len(chunk) - attended) * spf
        total, final_to = step.total_frames, step.final_to
        if final_to > self._final_to:
            self._keep_final(chunk.slice(self._final_to - first, final_to - first))
            self._final_to = final_to
        wanted = min(total, max(0, -(-(start_sample - s0) // spf)))
        if self._final is not None and wanted < self._final_to:
            begins = max(wanted, self._final_from)
            frames = EncodedFrames.concat([self._final.slice(begins - self._final_from, len(self._final)),
                              chunk.slice(final_to - first, len(chunk))])
        else:
            begins = wanted
            frames = chunk.slice(wanted - first, len(chunk))
        return s0 + begins * spf, frames

    def _keep_final(self, new: EncodedFrames) -> None:
        merged = new if self._final is None else EncodedFrames.concat([self._final, new])
        drop = max(0, len(merged) - self._keep_frames)
        self._final = merged.slice(drop, len(merged))
