"""A student one transformer block smaller: the start of a cheaper model (issue 34).

The transformer is most of what listening and scanning cost (docs/scanning.md: 61 % of version 12's time, four
blocks), so one block fewer saves about a sixth. Dropping a block leaves the others' weights as they are; fine-tuning
(``training.finetune``) then distils each kept block towards the Whisper block it started as, which the config
records as ``teacher_blocks`` (Whisper's block index of each of the student's blocks), so that the blocks above the
gap keep their teacher. The top block stays: it feeds the CTC head and learns Whisper's encoder output.

Usage: python -m training.drop_block --init DIR --block 2 --out DIR
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from transformers import Wav2Vec2ForCTC

from training.average import NOT_COPIED


def teacher_blocks(model: Wav2Vec2ForCTC) -> list[int]:
    """Whisper's block index of each of the model's blocks: as many as it has, in order, unless ``drop_block`` wrote
    others."""
    return list(getattr(model.config, "teacher_blocks", None) or range(model.config.num_hidden_layers))


def drop_block(model: Wav2Vec2ForCTC, block: int) -> Wav2Vec2ForCTC:
    """``model`` without its block ``block`` (0 is the first), in place; the top block cannot go."""
    blocks = teacher_blocks(model)
    if not 0 <= block < len(blocks) - 1:
        raise SystemExit(f"drop_block: --block must be 0-{len(blocks) - 2} (the top block, {len(blocks) - 1}, feeds the head)")
    del model.wav2vec2.encoder.layers[block]
    model.config.num_hidden_layers = len(blocks) - 1
    model.config.teacher_blocks = blocks[:block] + blocks[block + 1:]
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", type=Path, required=True, help="the model to shrink (a save_pretrained folder)")
    parser.add_argument("--block", type=int, required=True, help="the block to drop, 0 the first")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = drop_block(Wav2Vec2ForCTC.from_pretrained(args.init), args.block)
    model.save_pretrained(args.out)
    for path in args.init.iterdir():  # vocabulary, processor, thresholds (the bigger model's: recalibrate before it ships)
        if path.is_file() and path.name not in NOT_COPIED | {"config.json"}:
            shutil.copy(path, args.out / path.name)
    print(f"{args.out}: {model.config.num_hidden_layers} blocks, Whisper's {model.config.teacher_blocks}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()
