"""Randomly initialised wav2vec2 CTC checkpoints with the English character vocabulary.

They exist for what needs the real model code but no trained weights: wiring tests (``tiny``) and
compute-cost measurements of a wav2vec2-base-sized network (``base``, about 95 M parameters) on a
machine that cannot reach a model hub. Their scores are meaningless.
"""

from __future__ import annotations

import json
from pathlib import Path

from kwstream.audio.io import SAMPLE_RATE
from kwstream.model.vocab import ENGLISH_CTC_TOKENS, VOCAB, WORD_DELIMITER


SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7),
    "base": {},  # Wav2Vec2Config's defaults are wav2vec2-base
}


def save_english_processor(directory: str | Path, normalize: bool = True) -> None:
    """Write the tokenizer and feature extractor of the English character checkpoints (``normalize``:
    whether the model expects each input scaled to zero mean and unit variance)."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.json"
    vocab_file.write_text(json.dumps(VOCAB))
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token=WORD_DELIMITER)
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=normalize, return_attention_mask=False
    )
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)


def save_random_ctc_model(directory: str | Path, size: str = "tiny", seed: int = 0, normalize: bool = True,
                          **config) -> Path:
    """Save a random Wav2Vec2ForCTC of ``size`` (tiny or base) with its processor; returns the path.
    ``config``: Wav2Vec2Config settings that differ from the size's."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from kwstream.model.resolve import quiet_transformers

    quiet_transformers()
    torch.manual_seed(seed)
    config = Wav2Vec2Config(vocab_size=len(ENGLISH_CTC_TOKENS), pad_token_id=0, **(SIZES[size] | config))
    directory = Path(directory)
    Wav2Vec2ForCTC(config).save_pretrained(directory)
    save_english_processor(directory, normalize)
    return directory
