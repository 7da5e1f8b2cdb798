"""JSON values as a numeric (or BOOL) tensor's values: what NumPy would change without a
word (text, true beside numbers, integers past a datatype's range) refused by name instead."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelpilot.errors import InvalidInput, quoted
from modelpilot.protocol.datatypes import floats_outside, numpy_dtype

_NAMED_NUMBERS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
"""The numbers FP data may send as text."""


_TRUTHS = ((b"u", b"true"), (b"l", b"false"))
"""JSON's true and false, each by a letter of it that no number has, two characters in."""


def mentions_truths(text: bytes, end: int | None = None) -> bool:
    """Whether JSON ``text`` (to ``end``) may hold true or false: so that the values of a
    request are looked through for them only where it does.

    By a letter of each, which a number has none of: ``bytes.find`` of one byte runs at
    memory speed (0.1 ms over 2 MB of numbers), of the word itself ten times slower, a
    third of the time orjson took to parse the body. The letter's hits in names and text
    are each checked; past a few dozen, the word is looked for whole. A small body is
    looked through for the words at once, which takes less than the hops there."""
    if end is None or end == len(text):
        if len(text) <= 4096:  # (bounds cost a search a fifth more: 1,000 instructions)
            return text.find(b"true") >= 0 or text.find(b"false") >= 0
        end = len(text)
    elif end <= 4096:
        return text.find(b"true", 0, end) >= 0 or text.find(b"false", 0, end) >= 0
    for letter, word in _TRUTHS:
        at, hits = text.find(letter, 0, end), 0
        while at >= 0:
            if text[at - 2 : at - 2 + len(word)] == word:
                return True
            hits += 1
            if hits > 32:
                if text.find(word, 0, end) >= 0:
                    return True
                break
            at = text.find(letter, at + 1, end)
    return False


def numbers(
    name: str, datatype: str, shape: list[int], data: Any, truths: bool = True
) -> np.ndarray:
    """``data`` as ``datatype``, flat: JSON booleans for BOOL, JSON numbers for the others.

    NumPy would take more, and change it: the text "false" as true, "3.5" as 3.5, true
    beside numbers as 1, 300 as an INT8 of 44, 1e6 as an FP16 of infinity. Each of those is
    refused by name instead. ``truths``: whether ``data`` may hold true or false at all."""
    dtype = numpy_dtype(datatype)
    try:
        sent = np.asarray(data).reshape(-1)
    except ValueError:
        raise uneven(name, shape, data) from None
    if truths and datatype != "BOOL" and sent.dtype.kind in "iuf" and _holds_truths(data):
        raise InvalidInput(
            f"input {quoted(name)}: {datatype} data must be numbers, not true or false"
        )
    if sent.dtype == dtype:  # the usual case: FP64 data of floats, BOOL of booleans
        return sent
    if dtype.kind == "f" and sent.dtype.kind in "UO":
        sent = _named_numbers(data, sent)
    kinds = "b" if datatype == "BOOL" else "iuf"
    if sent.dtype.kind not in kinds and sent.size and not _plain_numbers(sent, datatype):
        wanted = "true or false" if datatype == "BOOL" else "numbers"
        raise InvalidInput(
            f"input {quoted(name)}: {datatype} data must be {wanted}, not {_kind_of(sent)}"
        )
    if dtype.kind in "iu":
        if sent.dtype.kind in "fO":
            _refuse_big_floats(name, datatype, sent, data)
        try:
            # From the JSON values, not ``sent``: a float64 rounds integers past 2**53.
            array = np.asarray(data, dtype=dtype).reshape(-1)
        except OverflowError:
            raise _out_of_range(name, datatype, data) from None
        if sent.dtype.kind in "fO" and (sent != array).any():
            raise InvalidInput(f"input {quoted(name)}: {datatype} data must be whole numbers")
        return array
    if dtype.itemsize >= 8:
        return sent.astype(dtype)  # (no float64 overflows)
    with np.errstate(over="ignore"):
        array = sent.astype(dtype)
    if np.isinf(array).any():
        grown = np.isinf(array) & np.isfinite(sent.astype(np.float64))  # not sent as inf
        if not grown.any():
            return array
        value = sent[int(np.argmax(grown))]
        raise InvalidInput(
            f"input {quoted(name)}: {datatype} data cannot hold {value}; its numbers go up to "
            f"{float(np.finfo(np.float16 if datatype == 'FP16' else np.float32).max):.4g} in size"
        )
    return array


def _holds_truths(data: Any) -> bool:
    """Whether ``data`` (JSON lists) holds true or false anywhere."""
    return any(type(v) is bool for v in np.asarray(data, dtype=object).reshape(-1).tolist())


def _named_numbers(data: Any, sent: np.ndarray) -> np.ndarray:
    """FP ``data`` that NumPy read as text or objects (``sent``), with the numbers sent as
    text (``_NAMED_NUMBERS``) read: as objects, any other text left as sent, to be refused.
    A list of numbers and text is text to NumPy: ``data`` tells which were numbers."""
    values = sent if sent.dtype.kind == "O" else np.asarray(data, dtype=object).reshape(-1)
    read = [_NAMED_NUMBERS.get(v, v) if isinstance(v, str) else v for v in values]
    array = np.empty(len(read), dtype=object)
    array[:] = read
    return array


def _refuse_big_floats(name: str, datatype: str, sent: np.ndarray, data: Any) -> None:
    """InvalidInput naming the first float of ``data`` that integer ``datatype`` cannot hold.
    A NumPy cast would change it without a word: orjson reads an integer past 64 bits as a
    float, and -2**63 - 1 became INT64's -2**63. ``sent`` (``data`` as NumPy read it) finds
    the suspects; ``data`` decides, as integers beside floats are floats in ``sent`` too,
    -2**63 among them."""
    if sent.dtype.kind == "f":
        suspects = floats_outside(sent.astype(np.float64, copy=False), numpy_dtype(datatype))
        if not suspects.any():
            return
        values = np.asarray(data, dtype=object).reshape(-1)[suspects]
    else:
        values = sent
    floats = [v for v in values.tolist() if type(v) is float]
    outside = floats_outside(np.array(floats, dtype=np.float64), numpy_dtype(datatype))
    if outside.any():
        raise _out_of_range(name, datatype, [floats[int(np.argmax(outside))]])


def _out_of_range(name: str, datatype: str, data: list[Any]) -> InvalidInput:
    """The error for integer ``datatype`` ``data`` that holds a number outside its range,
    which it names (compared as Python numbers, exactly; a float past 2**53 as the side it
    is on, as it is no longer the number sent: JSON integers past 64 bits are read as
    floats, 18446744073709551617 as 1.8446744073709552e+19)."""
    info = np.iinfo(numpy_dtype(datatype).name)
    low, high = int(info.min), int(info.max)
    values: list[int | float] = np.asarray(data, dtype=object).reshape(-1).tolist()
    dtype = numpy_dtype(datatype)
    outside = next(
        (
            v
            for v in values
            if not low <= v <= high
            or (isinstance(v, float) and floats_outside(np.array([v]), dtype)[0])
        ),
        None,
    )
    if isinstance(outside, float) and abs(outside) >= 2**53:
        side = f"below {low}" if outside < 0 else f"above {high}"
        shown = f"a number {side} (read as {outside!r})"
    else:
        shown = "" if outside is None else quoted(outside)
    return InvalidInput(
        f"input {quoted(name)}: {datatype} holds whole numbers from {low} to {high}"
        + ("" if outside is None else f"; the data hold {shown}")
    )


def uneven(name: str, shape: list[int], data: list[Any]) -> InvalidInput:
    """The error for ``data`` that NumPy could not make an array of: lists of different
    lengths side by side, lists beside values, or lists nested deeper than it takes."""
    depth, inner = 0, data
    while isinstance(inner, list) and inner:
        depth, inner = depth + 1, inner[0]
    if depth > 32:  # NumPy takes 32 dimensions (64 from NumPy 2 on)
        problem = f"its lists are nested {depth} deep"
    else:
        problem = "it is ragged: its lists are not all of one length, or mix lists and values"
    return InvalidInput(
        f"input {quoted(name)}: data cannot be a tensor of shape {shape}; {problem}. Send one "
        "flat list of the values, or lists nested as the shape says"
    )


def _plain_numbers(sent: np.ndarray, datatype: str) -> bool:
    """Whether ``sent``, objects, holds JSON numbers alone (integers past 64 bits, say), or
    numbers and nulls for a float ``datatype`` (a null is a missing value, NaN)."""
    if sent.dtype.kind != "O" or datatype == "BOOL":
        return False
    nulls = datatype.startswith("FP")
    return all(
        (isinstance(v, int | float) and not isinstance(v, bool)) or (v is None and nulls)
        for v in sent
    )


def _kind_of(sent: np.ndarray) -> str:
    kind = sent.dtype.kind
    if kind == "b":
        return "true or false"
    if kind in "iuf":
        return "numbers"
    if kind == "U":
        return "strings"
    found = {type(v).__name__ for v in sent if not isinstance(v, int | float)}
    names = {"str": "strings", "NoneType": "nulls", "bool": "true or false", "list": "lists"}
    return " and ".join(sorted(names.get(n, n) for n in found)) or "numbers"
