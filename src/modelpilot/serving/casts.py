"""Casting a request tensor's values to the datatype a model takes, where no value changes
meaning; refused, with what to send instead, where one would."""

from __future__ import annotations

import numpy as np

from modelpilot.errors import InvalidInput, quoted
from modelpilot.protocol.datatypes import (
    NUMERIC_DATATYPES,
    datatype_of,
    floats_outside,
    integers_fit,
    numpy_dtype,
)


def cast(name: str, array: np.ndarray, datatype: str) -> np.ndarray:
    """Cast to the model's dtype where no value changes meaning; refuse otherwise."""
    target = numpy_dtype(datatype)
    if array.dtype == target:
        return array
    got = datatype_of(array) if array.dtype.kind != "O" else "BYTES"
    if datatype == "BYTES":
        if got != "BYTES":
            # Numbers turned into objects would reach the model as floats where it declared
            # text: it would fail on them (len() of a float) or answer for the wrong thing.
            raise InvalidInput(
                f"input {quoted(name)} is {got} but the model takes text (BYTES); send "
                "strings, as BYTES"
            )
        return as_bytes(array)
    if got == "BYTES":
        numbers = _booleans_with_missing(array)
        if numbers is None:
            raise InvalidInput(
                f"input {quoted(name)} holds strings but the model takes {datatype}; send numbers"
            )
        array = numbers
    if datatype in NUMERIC_DATATYPES or datatype == "BOOL":
        if target.kind in "iu" and array.dtype.kind == "f" and not _whole(array):
            raise InvalidInput(
                f"input {quoted(name)} holds fractional or missing values but the model takes "
                f"{datatype}; send whole numbers"
            )
        with np.errstate(all="ignore"):  # what the cast could not hold is found below
            converted = array.astype(target, copy=False)
        outside = _outside(array, converted, target)
        if outside is not None:
            raise InvalidInput(
                f"input {quoted(name)} holds {outside}, which {datatype} cannot hold (the model "
                f"takes {datatype}{_range(target)})"
            )
        return converted
    raise InvalidInput(f"input {quoted(name)} is {got} but the model takes {datatype}")


def _booleans_with_missing(array: np.ndarray) -> np.ndarray | None:
    """An object array of booleans beside missing values, and numbers (JSON's ``[0.4, true]``
    and ``[0.2, null]``, as pandas writes rows with a boolean column with gaps), as float64:
    1.0, 0.0 and NaN, as the reference read them; None for one that holds no boolean, or
    anything but these (text). It was refused as "holds strings", holding none."""
    flat = array.ravel().tolist()
    if not any(isinstance(v, bool | np.bool_) for v in flat):
        return None
    if not all(v is None or isinstance(v, bool | int | float | np.number | np.bool_) for v in flat):
        return None
    return np.array([np.nan if v is None else float(v) for v in flat]).reshape(array.shape)


def _outside(array: np.ndarray, converted: np.ndarray, target: np.dtype) -> object | None:
    """The first value of ``array`` that ``converted`` (its cast to ``target``) does not
    hold, or None: integers wrap around and floats overflow when cast, silently."""
    if array.dtype.kind == "b" or not array.size:
        return None
    if target.kind == "b":
        wrong = (array != 0) & (array != 1)
    elif target.kind in "iu":
        info = np.iinfo(target)
        if array.dtype.kind == "f":
            # (Not against info.max: 2**64 passed for UINT64, compared as floats.)
            wrong = floats_outside(array.astype(np.float64, copy=False), target)
        else:  # integers against integers: compared exactly, not as floats
            if integers_fit(array, target):
                return None
            wrong = np.array([not info.min <= int(v) <= info.max for v in array.flat])
    elif target.kind == "f":
        wrong = np.isinf(converted) & ~np.isinf(array)
    else:
        return None
    if not wrong.any():
        return None
    value: object = array.flat[int(np.argmax(wrong.ravel()))]
    return value.item() if isinstance(value, np.generic) else value


def _range(target: np.dtype) -> str:
    if target.kind == "b":
        return ": 0 or 1, false or true"
    if target.kind in "iu":
        info = np.iinfo(target)
        return f": whole numbers from {info.min} to {info.max}"
    return f": numbers up to {np.finfo(target).max:.4g} in size"


def as_bytes(array: np.ndarray) -> np.ndarray:
    """Objects as the bytes of their text (numbers sent among strings, say)."""
    out = np.empty(array.shape, dtype=object)
    out.flat[:] = [v if isinstance(v, bytes) else str(v).encode() for v in array.flat]
    return out


def _whole(array: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(array)) and np.all(np.equal(np.mod(array, 1), 0)))
