"""Common words that sound exactly like a keyword, and the warning they deserve.

A spotter hears sounds, not spellings: "two" and a "to" said in full are one sound, so every such
"to" can fire it, whatever the model. Wake words are chosen to avoid this, so kwstream says so when
a typed keyword has a homophone that everyday speech says often. The table (``kwstream/assets/homophones.json``, built by
``python -m training.homophones``) gives each homophone's Zipf frequency in text; at
``WORDS_PER_HOUR`` of conversation that becomes how often it is said per hour.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from kwstream.assets import HOMOPHONES_FILE

TABLE_PATH = HOMOPHONES_FILE
WORDS_PER_HOUR = 9_000
"""Conversational English runs at about 150 words a minute."""
WARN_PER_HOUR = 0.5
"""Warn when the homophones are said at least this often: the bundled model's goal false-alarm rate."""
MAX_SPELLINGS = 4
"""A keyword's spellings scored at most (``spellings``): each adds states to the Viterbi pass."""


@dataclass(frozen=True)
class Homophone:
    word: str
    per_hour: float
    """How often everyday speech says it, from its frequency in text at ``WORDS_PER_HOUR``."""


@functools.cache
def _table() -> dict[str, dict[str, float]]:
    return json.loads(TABLE_PATH.read_text())["homophones"]


def homophones(keyword: str) -> list[Homophone]:
    """Common words that sound like a one-word ``keyword``, most frequent first ([] for phrases)."""
    alike = _table().get(keyword.strip().lower(), {})
    return [Homophone(word, 10 ** (zipf - 9) * WORDS_PER_HOUR) for word, zipf in alike.items()]


def spellings(keyword: str) -> list[str]:
    """``keyword`` first, then the same words spelled as their rare homophones ("hey": "hey", "hay").

    A model hears the sound and spells it as its training text did: version 10 reads a clear "hey" as
    HAY. So a typed keyword is also matched in the spellings of homophones that everyday speech says
    less than ``WARN_PER_HOUR`` each, which cost almost no false alarms; common ones ("to" for "two")
    are warned about instead (``homophone_warning``), since matching them would fire on every "to".
    Each word of a phrase is replaced in turn; at most ``MAX_SPELLINGS`` in all."""
    texts = [" ".join(keyword.split())]
    words = texts[0].split(" ")
    for i, word in enumerate(words):
        for other in homophones(word):
            if other.per_hour < WARN_PER_HOUR and len(texts) < MAX_SPELLINGS:
                texts += [" ".join(words[:i] + [other.word] + words[i + 1:])]
    return texts


def homophone_warning(keyword: str) -> str | None:
    """A one-line warning when ``keyword``'s homophones are said at least ``WARN_PER_HOUR``, else None."""
    alike = homophones(keyword)
    per_hour = sum(h.per_hour for h in alike)
    if per_hour < WARN_PER_HOUR:
        return None
    named = [f'"{h.word}"' for h in alike if h.per_hour >= WARN_PER_HOUR / 5] or [f'"{alike[0].word}"']  # not "tu"
    words = " and ".join(", ".join(named).rsplit(", ", 1))
    rate = f"{per_hour:.0f}" if per_hour >= 10 else f"{per_hour:.1f}"
    return (
        f'"{keyword}" sounds like {words} (about {rate} times an hour in everyday English); a spotter hears '
        "sounds, not spellings, so expect false alarms on them: a longer keyword avoids this"
    )
