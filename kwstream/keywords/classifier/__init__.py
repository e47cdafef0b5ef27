"""A keyword classifier head on frozen wav2vec2 features, and training it (``kwstream train``).

``head`` is the head and its scorer; ``dataset`` reads a Speech Commands layout and splits it by
speaker, ``features`` turns clips into cached hidden states (with noise and time-shift
augmentation), ``fit`` trains the head, ``report`` measures it, ``train`` ties them together (the
command's printing is ``kwstream.cli.train``). The workshop's ``training/fsdd_layout.py`` builds a
layout from spoken digits.
"""
