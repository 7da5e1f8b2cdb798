"""Raw tensor bytes, as the binary extension (REST) and ``raw_*_contents`` (gRPC) carry them.

Fixed-size datatypes are the little-endian row-major element bytes. BYTES tensors are each
element prefixed by its length as a 4-byte little-endian unsigned integer.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from modelpilot.errors import BadRequest
from modelpilot.protocol.datatypes import element_size, numpy_dtype

_LENGTH = struct.Struct("<I")


def element_count(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        if dim < 0:
            raise BadRequest(f"shape {list(shape)} has a negative dimension")
        count *= dim
    return count


def decode_raw(
    name: str, datatype: str, shape: Sequence[int], raw: bytes | memoryview
) -> np.ndarray:
    """Raw bytes as an array of ``shape``; zero-copy for fixed-size types (read-only view)."""
    count = element_count(shape)
    if datatype == "BYTES":
        return _decode_bytes(name, shape, count, raw)
    size = element_size(datatype)
    if len(raw) != count * size:
        raise BadRequest(
            f"input {name!r}: {len(raw)} bytes of raw data, but shape {list(shape)} of "
            f"{datatype} needs {count * size}"
        )
    dtype = numpy_dtype(datatype).newbyteorder("<")
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape))


def _decode_bytes(
    name: str, shape: Sequence[int], count: int, raw: bytes | memoryview
) -> np.ndarray:
    view = memoryview(raw)
    items: list[bytes] = []
    offset = 0
    end = len(view)
    while offset < end:
        if offset + 4 > end:
            raise BadRequest(f"input {name!r}: BYTES data ends inside a length prefix")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise BadRequest(
                f"input {name!r}: a BYTES element claims {length} bytes but only "
                f"{end - offset} remain"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise BadRequest(
            f"input {name!r}: {len(items)} BYTES elements, but shape {list(shape)} needs {count}"
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
