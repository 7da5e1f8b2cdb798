"""The protocol's datatype names and their NumPy equivalents."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpilot.errors import InvalidInput, quoted

# BYTES tensors are NumPy object arrays of ``bytes``; every other datatype is a fixed-size dtype.
_TO_NUMPY: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_FROM_NUMPY: dict[np.dtype[np.generic], str] = {
    dtype: name for name, dtype in _TO_NUMPY.items() if name != "BYTES"
}

DATATYPES: frozenset[str] = frozenset(_TO_NUMPY)
NUMERIC_DATATYPES: frozenset[str] = frozenset(DATATYPES - {"BYTES", "BOOL"})


def numpy_dtype(datatype: str) -> np.dtype[np.generic]:
    """The NumPy dtype that holds tensors of protocol ``datatype``."""
    try:
        return _TO_NUMPY[datatype]
    except KeyError:
        raise InvalidInput(
            f"unknown datatype {quoted(datatype)}; use one of {', '.join(sorted(DATATYPES))}"
        ) from None


def narrowed(name: str, values: np.ndarray, datatype: str) -> np.ndarray:
    """Integer ``values`` as integer ``datatype``, or InvalidInput if some are outside its
    range (which a cast would wrap around without a word)."""
    dtype = numpy_dtype(datatype)
    if values.dtype != dtype and not integers_fit(values, dtype):
        info = np.iinfo(dtype.name)
        low, high = int(values.min()), int(values.max())
        raise InvalidInput(
            f"input {quoted(name)}: {datatype} holds {info.min} to {info.max}; "
            f"the data reach {low if low < info.min else high}"
        )
    return values.astype(dtype, copy=False)


def integers_fit(values: np.ndarray, dtype: np.dtype[Any]) -> bool:
    """Whether every one of the integer ``values`` is in the range of integer ``dtype``
    (compared as Python integers, exactly: a cast would wrap the others around)."""
    if not values.size:
        return True
    info = np.iinfo(dtype)
    return int(values.min()) >= info.min and int(values.max()) <= info.max


def floats_outside(values: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """Which of the float ``values`` integer ``dtype`` cannot hold, as a mask.

    Compared against the powers of two that bound the range, which a float holds exactly:
    compared with ``iinfo.max`` itself, 2**64 passed for UINT64, as 2**64 - 1 rounds to it.
    For a 64-bit signed ``dtype``, -2**63 too: a JSON parser reads every integer past 64 bits
    as a float, and those from -2**63 - 1024 to -2**63 - 1 round to it; a client that meant
    -2**63 itself sends it as an integer, which stays one."""
    info = np.iinfo(dtype)
    top = float(int(info.max) + 1)
    low = float(info.min)
    if dtype.itemsize == 8 and info.min < 0:
        return (values <= low) | (values >= top)
    return (values < low) | (values >= top)


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype name for a NumPy array (strings and objects are BYTES)."""
    dtype = array.dtype
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    try:
        return _FROM_NUMPY[dtype]
    except KeyError:
        raise InvalidInput(f"arrays of dtype {dtype} have no protocol datatype") from None


def element_size(datatype: str) -> int:
    """Bytes per element in the raw (binary) encoding; 0 for BYTES, which is length-prefixed."""
    if datatype == "BYTES":
        return 0
    return numpy_dtype(datatype).itemsize
