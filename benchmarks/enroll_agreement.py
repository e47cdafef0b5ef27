"""How enrollment tells takes of one word from takes of different words (``kwstream.enroll.enroll.odd_take``).

Development material only: jackson's FSDD digits, takes 0-9 of each. Every set of three takes of one
digit must pass; sets of two takes of one digit and one of another must be refused, naming the odd one.

    python -m benchmarks.enroll_agreement [--fsdd ../shared/data/fsdd] [--model DIR]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from kwstream.assets import MODEL_DIR
from kwstream.audio.io import read_audio
from kwstream.enroll.enroll import EnrollSettings, agreement_matrix, example_features, odd_take, prepare, speech_pieces
from kwstream.keywords.base import default_layer
from kwstream.model.encoder import Encoder, EncoderSettings

TAKES = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd")
    parser.add_argument("--odd-sets", type=int, default=2000)
    parser.add_argument("--model", type=Path, default=MODEL_DIR)
    args = parser.parse_args()
    encoder = Encoder(EncoderSettings(model=str(args.model), threads=1))
    settings, layer = EnrollSettings(), default_layer(encoder, "enrolled")
    features = [example_features(encoder, prepare(read_audio(args.fsdd / "recordings" / f"{d}_jackson_{i}.wav"), "take", settings),
                                 layer, settings) for d in range(10) for i in range(TAKES)]
    pairs = agreement_matrix(features, speech_pieces(encoder, layer))
    same = [odd_take(pairs[np.ix_(idx, idx)]) is None
            for d in range(10) for idx in (list(c) for c in itertools.combinations(range(d * TAKES, (d + 1) * TAKES), 3))]
    rng = np.random.default_rng(0)
    refused = named = 0
    for _ in range(args.odd_sets):
        word, other = rng.choice(10, 2, replace=False)
        a, b = rng.choice(TAKES, 2, replace=False)
        idx = [word * TAKES + a, word * TAKES + b, other * TAKES + int(rng.integers(TAKES))]
        odd = odd_take(pairs[np.ix_(idx, idx)])
        refused += odd is not None
        named += odd is not None and odd.take == 2
    print(f"three takes of one digit: {np.mean(same):.3f} of {len(same)} sets pass")
    print(f"two takes of one digit and one of another: {refused / args.odd_sets:.3f} of {args.odd_sets} sets refused, "
          f"the odd take named in {named / max(refused, 1):.3f} of those")


if __name__ == "__main__":
    main()
