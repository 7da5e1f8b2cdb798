"""Raw tensor bytes, as the binary extension (REST) and ``raw_*_contents`` (gRPC) carry them.

Fixed-size datatypes are the little-endian row-major element bytes. BYTES tensors are each
element prefixed by its length as a 4-byte little-endian unsigned integer.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from modelpilot.errors import BadRequest, InvalidInput, quoted
from modelpilot.protocol.datatypes import element_size, numpy_dtype

_LENGTH = struct.Struct("<I")

MAX_DIMENSIONS = 32
"""The most dimensions a tensor may have: NumPy 1's limit (NumPy 2's is 64), far past what
any model takes."""
MAX_EXTENT = 2**60
"""The product of a shape's dimensions, zeros left out, must stay under this: an array of it,
even an empty one, would need more bytes than NumPy can count (2**63, at 8 bytes an element)."""


def element_count(name: str, shape: Sequence[int]) -> int:
    """The number of elements of input ``name``'s tensor of ``shape``, or InvalidInput for a
    shape that no array can have: a negative dimension, more than ``MAX_DIMENSIONS``, or
    dimensions too large. NumPy refuses an array of ``[0, 2**62, 2**62]`` too, although it
    would hold nothing: it counts the bytes without the zeros."""
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidInput(
            f"input {quoted(name)}: its shape has {len(shape)} dimensions; a tensor has at "
            f"most {MAX_DIMENSIONS}"
        )
    count = extent = 1
    for dim in shape:
        if dim < 0:
            raise InvalidInput(
                f"input {quoted(name)}: shape {list(shape)} has a negative dimension"
            )
        count *= dim
        extent *= dim or 1
    if extent >= MAX_EXTENT:
        raise InvalidInput(
            f"input {quoted(name)}: shape {list(shape)} is larger than any tensor can be (its "
            "dimensions other than 0 multiply to 2**60 or more); send the shape of the data"
        )
    return count


def decode_raw(
    name: str, datatype: str, shape: Sequence[int], raw: bytes | memoryview
) -> np.ndarray:
    """Raw bytes as an array of ``shape``; zero-copy for fixed-size types (read-only view)."""
    count = element_count(name, shape)
    if datatype == "BYTES":
        return _decode_bytes(name, shape, count, raw)
    size = element_size(datatype)
    if len(raw) != count * size:
        raise BadRequest(
            f"input {quoted(name)}: {len(raw)} bytes of raw data, but shape {list(shape)} of "
            f"{datatype} needs {count * size}"
        )
    if datatype == "BOOL":
        _check_bools(name, raw)
    dtype = numpy_dtype(datatype).newbyteorder("<")
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape))


def _check_bools(name: str, raw: bytes | memoryview) -> None:
    """BadRequest unless every byte of BOOL data is 0 (false) or 1 (true), as Triton's are:
    NumPy would take any other byte as a bool, which compares equal to neither."""
    octets = np.frombuffer(raw, dtype=np.uint8)
    wrong = octets > 1
    if wrong.any():
        at = int(np.argmax(wrong))
        raise BadRequest(
            f"input {quoted(name)}: BOOL data must be bytes 0 (false) or 1 (true), but byte "
            f"{at} of its raw data is {octets[at]}"
        )


def _decode_bytes(
    name: str, shape: Sequence[int], count: int, raw: bytes | memoryview
) -> np.ndarray:
    view = memoryview(raw)
    items: list[bytes] = []
    offset = 0
    end = len(view)
    while offset < end:
        if offset + 4 > end:
            raise BadRequest(f"input {quoted(name)}: BYTES data ends inside a length prefix")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise BadRequest(
                f"input {quoted(name)}: a BYTES element claims {length} bytes but only "
                f"{end - offset} remain"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise BadRequest(
            f"input {quoted(name)}: {len(items)} BYTES elements, but shape {list(shape)} "
            f"needs {count}"
        )
    array = np.empty(count, dtype=object)
    array[:] = items
    return array.reshape(tuple(shape))


def encode_raw(datatype: str, array: np.ndarray) -> bytes:
    """An array's raw bytes in the protocol's layout."""
    if datatype == "BYTES":
        parts = []
        for item in array.ravel():
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    dtype = numpy_dtype(datatype).newbyteorder("<")
    return np.ascontiguousarray(array, dtype=dtype).tobytes()
