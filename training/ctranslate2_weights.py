"""Read the named arrays of a CTranslate2 ``model.bin`` without CTranslate2.

The layout is CTranslate2's own (``ctranslate2/specs/model_spec.py``, ``_serialize``): a uint32
binary version, the spec's name and a uint32 revision, then per variable its name, a uint8 rank,
uint32 dims, a uint8 dtype id and a uint32 byte count followed by the bytes; then aliases (name ->
name). Strings are a uint16 length (with the NUL), the UTF-8 bytes and a NUL. All little-endian.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16)
"""By dtype id; id 5 (bfloat16) has no numpy type and is refused."""
SUPPORTED_VERSIONS = (5, 6)


def _read(f: BinaryIO, fmt: str) -> int:
    size = struct.calcsize("<" + fmt)
    return struct.unpack("<" + fmt, f.read(size))[0]


def _read_string(f: BinaryIO) -> str:
    length = _read(f, "H")
    return f.read(length)[:-1].decode("utf-8")


def read_model_bin(path: Path) -> dict[str, np.ndarray]:
    """Every variable of the model, aliases resolved, as numpy arrays in their stored dtype."""
    with Path(path).open("rb") as f:
        version = _read(f, "I")
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"{path}: CTranslate2 binary version {version}, this reader knows {SUPPORTED_VERSIONS}")
        _read_string(f)  # the spec's name
        _read(f, "I")  # its revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(_read(f, "I")):
            name = _read_string(f)
            shape = tuple(_read(f, "I") for _ in range(_read(f, "B")))
            dtype_id = _read(f, "B")
            if dtype_id >= len(DTYPES):
                raise ValueError(f"{path}: {name} has dtype id {dtype_id}, which numpy cannot hold")
            data = f.read(_read(f, "I"))
            variables[name] = np.frombuffer(data, dtype=DTYPES[dtype_id]).reshape(shape)
        for _ in range(_read(f, "I")):
            alias = _read_string(f)
            variables[alias] = variables[_read_string(f)]
    return variables
