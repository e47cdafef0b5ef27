"""Training a classifier head (``kwstream train``) for ``kwstream.keywords.classifier``.

``dataset`` reads a Speech Commands layout and splits it by speaker, ``features`` turns clips into
cached hidden states (with noise and time-shift augmentation), ``fit`` trains the head, ``report``
measures it through the detector replay, ``train`` ties them together (the command's printing is
``kwstream.cli.train``). The workshop's ``training/fsdd_layout.py`` builds a layout from spoken digits.
Keywords trained from their text: ``voices`` speaks (the workshop uses it too), ``synth`` says what
to synthesise and caches it, ``keywords`` lays the clips out and trains on them.
"""
