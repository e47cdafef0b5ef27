"""Character vocabulary and processor, laid out exactly like facebook/wav2vec2-base-960h.

Keeping the same ids means one CTC scorer serves both our model and the public checkpoints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

from kwstream.audio.io import SAMPLE_RATE
from kwstream.model.vocab import LETTERS, PAD_ID, VOCAB, WORD_DELIMITER  # noqa: F401 (PAD_ID: for training.model)


_NOT_IN_VOCAB = re.compile(r"[^A-Z' ]+")
_SPACES = re.compile(r" +")


def normalize_text(text: str) -> str:
    """Uppercase, keep A-Z, apostrophe and single spaces (what the CTC head can emit)."""
    text = text.upper().replace("-", " ")
    text = _NOT_IN_VOCAB.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def encode(text: str) -> list[int]:
    """Token ids of an already normalised text; spaces become the word delimiter."""
    return [VOCAB[WORD_DELIMITER if ch == " " else ch] for ch in text]


def decode_ctc(ids: list[int]) -> str:
    """Greedy CTC collapse: merge repeats, drop pad/specials, map delimiter to space."""
    inverse = {i: tok for tok, i in VOCAB.items()}
    chars: list[str] = []
    previous = -1
    for i in ids:
        if i != previous and i != PAD_ID:
            tok = inverse.get(int(i), "")
            if tok == WORD_DELIMITER:
                chars.append(" ")
            elif tok in LETTERS:
                chars.append(tok)
        previous = i
    return _SPACES.sub(" ", "".join(chars)).strip()


def write_vocab(path: Path) -> Path:
    """Write vocab.json in the wav2vec2-base-960h layout."""
    path.write_text(json.dumps(VOCAB, indent=1))
    return path


def build_processor(workdir: Path) -> Wav2Vec2Processor:
    """Processor with the same tokenizer and feature-extractor settings as wav2vec2-base-960h."""
    workdir.mkdir(parents=True, exist_ok=True)
    vocab_file = write_vocab(workdir / "vocab.json")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token=WORD_DELIMITER
    )
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    )
    return Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)
