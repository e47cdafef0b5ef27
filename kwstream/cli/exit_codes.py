"""The ``kwstream`` command's exit statuses (one place, so that no command module imports another)."""

EXIT_OK = 0
EXIT_FAILED = 1
"""The input ended with an error (a file that could not be read to its end)."""
EXIT_USER_ERROR = 2
"""A mistake the user can fix: one line on stderr, never a traceback."""
EXIT_INTERRUPTED = 130
