"""The ``kwstream`` command's exit statuses (one place, so that no command module imports another)."""

EXIT_OK = 0
EXIT_FAILED = 1
"""Work went on past a failure: a file that could not be read to its end, a scan's unreadable files, a damaged
stored keyword among those listed."""
EXIT_USER_ERROR = 2
"""A mistake the user can fix: one line on stderr, never a traceback."""
EXIT_INTERRUPTED = 130
