"""How enrollment tells takes of one word from takes of different words (``kwstream.enroll.enroll.odd_take``).

Development material only: FSDD digits, takes 0-9 of each (jackson's, or ``--speaker``'s). Every set of three
takes of one digit must pass; sets of two takes of one digit and one of another must be refused, naming the odd
one; so must two takes of different digits, and two of one digit pass.

    python -m benchmarks.enroll_agreement [--fsdd ../shared/data/fsdd] [--model DIR] [--speaker theo]
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
    parser.add_argument("--speaker", default="jackson")
    args = parser.parse_args()
    encoder = Encoder(EncoderSettings(model=str(args.model), threads=1))
    settings, layer = EnrollSettings(), default_layer(encoder, "enrolled")
    features = [example_features(encoder, prepare(read_audio(args.fsdd / "recordings" / f"{d}_{args.speaker}_{i}.wav"), "take", settings),
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
    digit = np.arange(10 * TAKES) // TAKES
    two = [(digit[i] == digit[j], odd_take(pairs[np.ix_([i, j], [i, j])]) is None, pairs[i, j])
           for i, j in itertools.combinations(range(10 * TAKES), 2)]
    alike = np.array([agreement for same, _, agreement in two if same])
    unlike = np.array([agreement for same, _, agreement in two if not same])
    print(f"two takes of one digit: {np.mean([ok for same, ok, _ in two if same]):.3f} of {len(alike)} pairs pass "
          f"(agreement 1st / 5th / 50th percentile {np.percentile(alike, [1, 5, 50]).round(2).tolist()}); two of different "
          f"digits: {1 - np.mean([ok for same, ok, _ in two if not same]):.3f} of {len(unlike)} refused "
          f"(50th / 95th / 99th percentile {np.percentile(unlike, [50, 95, 99]).round(2).tolist()})")
    for floor in (0.2, 0.3, 0.35, 0.4, 0.45, 0.5):
        print(f"  two takes refused under an agreement of {floor}: one digit's pairs pass {np.mean(alike >= floor):.3f}, "
              f"different digits' refused {np.mean(unlike < floor):.3f}")


if __name__ == "__main__":
    main()
