"""The ``kwstream`` command's exit statuses (one place, so that no command module imports another)."""

EXIT_OK = 0
EXIT_FAILED = 1
"""Work went on past a failure, its results given: a recording that could not be read to its end (a read error part
way, a WAV shorter than its header says; listen reports what came before) or a device that failed, a scan's
unreadable files, a damaged stored keyword among those listed."""
EXIT_USER_ERROR = 2
"""A mistake the user can fix: one line on stderr, never a traceback."""
EXIT_INTERRUPTED = 130
