"""Errors a user can cause and fix; the CLI prints them as one line, without a traceback."""


class KwstreamError(Exception):
    """Base class: anything the user can act on (bad input, missing device, unknown model)."""


class AudioInputError(KwstreamError):
    """No usable input: missing device, PortAudio absent, unreadable or corrupt file."""


class ModelLoadError(KwstreamError):
    """The model cannot be found, reached or used as a CTC keyword scorer."""


class KeywordError(KwstreamError):
    """A keyword is empty, malformed, or cannot be spelled with the model's tokens."""
