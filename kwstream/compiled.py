"""Hot loops compiled to machine code with numba, for the per-window passes of the scorers."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

import numba

_Function = TypeVar("_Function", bound=Callable)


def compiled(function: _Function) -> _Function:
    """``function`` compiled with numba on its first call, and cached on disk for later processes.

    numba caches in ``NUMBA_CACHE_DIR`` if that is set, else next to the source (``__pycache__``),
    else (a read-only install) in the user's cache directory (``~/.cache/numba``). Where none is
    writable it compiles in every process (1-3 s a kernel) instead of refusing to import. A
    failure to compile raises on the first call (scorers call their kernel once when built);
    ``NUMBA_DISABLE_JIT=1`` runs the same code as plain Python: the same results, slowly.
    """
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError as error:  # "cannot cache function ...: no locator available"
        warnings.warn(f"kwstream: {error}; compiling {function.__name__} in every process", stacklevel=2)
        return numba.njit(nogil=True)(function)
