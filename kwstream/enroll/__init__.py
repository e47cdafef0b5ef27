"""Enrollment by example (``kwstream enroll``): microphone takes or files, through the pipeline, to a
calibrated keyword for ``kwstream.keywords.enrolled``. A workflow above the stream: the scorer it
makes lives in ``keywords``, which never opens a microphone."""
