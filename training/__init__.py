"""The bundled model's workshop (not installed): corpus synthesis, augmentation, training, evaluation,
the development streams and the homophone table builder. Run from the repository root:
``python -m training.corpus ...``."""
