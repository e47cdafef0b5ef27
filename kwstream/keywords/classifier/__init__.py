"""A keyword classifier head on frozen wav2vec2 features: ``head`` is the head and its scorer.
Training it (``kwstream train``) is ``kwstream.train``."""
