"""Training a keyword classifier head on frozen wav2vec2 features (``kwstream train``).

``dataset`` reads a Speech Commands layout and splits it by speaker, ``features`` turns clips into
cached hidden states (with noise and time-shift augmentation), ``fit`` trains the head, ``report``
measures it, ``train`` ties them together, and ``fsdd_layout`` builds a layout from spoken digits.
"""
