"""The English character vocabulary of facebook/wav2vec2-base-960h, which the bundled model shares.

Keeping the same ids means one CTC scorer serves both our model and the public checkpoints.
"""

from __future__ import annotations

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<unk>", "|")
LETTERS: tuple[str, ...] = tuple("ETAONIHSRDLUMWCFGYPBVK'XJQZ")
ENGLISH_CTC_TOKENS: list[str] = [*SPECIAL_TOKENS, *LETTERS]
"""Token order of the English character checkpoints (facebook/wav2vec2-base-960h and kin)."""
VOCAB: dict[str, int] = {token: i for i, token in enumerate(ENGLISH_CTC_TOKENS)}
PAD_ID = VOCAB["<pad>"]
WORD_DELIMITER = "|"
