"""kwstream: real-time keyword spotting on live microphones with wav2vec 2.0."""
