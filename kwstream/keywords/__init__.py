"""What to spot: the scorer protocol and default layers (base), the keyword set with its one
threshold map (keyword_set), typed keywords through the CTC head (ctc), homophones, enrolled
keywords (enrolled/) and trained classifier heads (classifier/).

Scorers only: nothing here opens a microphone or runs a pipeline. The workflows that make enrolled
keywords and classifier heads live above the stream, in ``kwstream.enroll`` and ``kwstream.train``."""
