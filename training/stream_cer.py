"""Greedy CER of held-out real clips encoded whole and encoded as `kwstream listen` streams them.

Usage: python -m training.stream_cer --model DIR [--clips 120] [--lead-noise 0.01] [--int8]

Training and the development CER see whole clips; the live pipeline encodes ~1 s chunks (a 0.25 s
hop with 0.5 s of left and 0.25 s of right context, ``kwstream.stream.chunked``), and what a chunk
makes of its audio can differ from what the whole clip makes of it. This measures the gap on the
real speakers the model never trained on (the wake-phrase development share and FSDD's theo, as
``training.finetune`` selects on), each clip with 0.5 s before and after it: digital silence, or
with --lead-noise a faint noise at that fraction of the clip's RMS, as a microphone gives.
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from kwstream.audio.io import SAMPLE_RATE, read_audio
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.stream.chunked import ChunkedEncoder
from kwstream.stream.pipeline import PipelineSettings
from training.corpus import SHARED_DATA_DIR
from training.evaluate import error_rate
from training.vocab import decode_ctc
from training.whisper_head import real_dev

EDGE_S = 0.5


def streamed_log_probs(encoder: Encoder, audio: np.ndarray, settings: PipelineSettings) -> np.ndarray:
    """The frames a stream of ``audio`` ends with: final ones, then the last step's provisional ones."""
    rate = SAMPLE_RATE
    chunker = ChunkedEncoder(encoder, (), int(settings.left_context_s * rate), int(settings.right_context_s * rate),
                             len(audio) + rate, settings.statistics_memory_s)
    hop = int(settings.hop_s * rate)
    for stop in range(hop, len(audio), hop):
        chunker.frames(lambda a, b: audio[a:b], 0, stop)
    return chunker.frames(lambda a, b: audio[a:b], 0, len(audio))[1].log_probs


def measure(model: str, clips: int, lead_noise: float, int8: bool, seed: int = 0) -> dict[str, float]:
    encoder = Encoder(EncoderSettings(model=model, threads=1, int8=int8))
    rows = real_dev(SHARED_DATA_DIR)
    rows = [rows[i] for i in sorted(np.random.default_rng(seed).choice(len(rows), min(clips, len(rows)), replace=False))]
    settings = PipelineSettings()
    refs, whole, streamed = [], [], []
    rng = np.random.default_rng(seed + 1)
    for path, text in tqdm(rows, desc="clips", mininterval=10):
        clip = read_audio(path)
        edge = lambda: (rng.normal(0, lead_noise * clip.std(), int(EDGE_S * SAMPLE_RATE))).astype(np.float32)  # noqa: E731
        audio = np.concatenate([edge(), clip, edge()])
        refs.append(text)
        whole.append(decode_ctc(encoder.encode(audio).log_probs.argmax(-1).tolist()))
        streamed.append(decode_ctc(streamed_log_probs(encoder, audio, settings).argmax(-1).tolist()))
    return {"clips": len(rows), "whole_cer": round(error_rate(refs, whole), 4), "streamed_cer": round(error_rate(refs, streamed), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--lead-noise", type=float, default=0.0, help="noise before and after each clip, relative to its RMS")
    parser.add_argument("--int8", action="store_true")
    args = parser.parse_args()
    print({"model": args.model, "lead_noise": args.lead_noise, "int8": args.int8,
           **measure(args.model, args.clips, args.lead_noise, args.int8)})


if __name__ == "__main__":
    main()
