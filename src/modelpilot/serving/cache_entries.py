"""The result cache's entries: their keys, and answers as bytes and back, exactly as given.

An answer read back from a shared cache (a directory, Redis) must be indistinguishable from
the model's own: the same dtypes, and in object arrays the same Python types. Text given
back as bytes where the model answered ``str`` reached the monitor beside the model's own
``str`` labels, and one unsortable round of mixed ``str`` and ``bytes`` was dropped whole
(its drift, its predictions, its inference log, and so the labels posted for it). So arrays
keep their NumPy dtype, and each element of an object array its type; an answer holding
anything else (a dict, an object of the model's own) is not cached at all rather than cached
as something else. Not pickle: an entry in a Redis that others can write to must not be able
to run code in the server that reads it.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence

import numpy as np
import orjson

from modelpilot.protocol.raw import encode_raw
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Batch

Outputs = dict[str, np.ndarray]

MAGIC = b"MPR2"
"""First bytes of an entry in this layout: an entry of another (an older ModelPilot sharing
the directory or the Redis) reads as damaged, a miss, rather than as a wrong answer."""

_KINDS = {type(None): 1, str: 2, bytes: 3, float: 4, int: 5, bool: 6}
"""The kinds of value an object array's element may be, by a byte each (others: 0)."""

_FIXED_KINDS = frozenset("biufcSUMm")
"""NumPy kinds whose arrays are stored as their raw bytes and dtype (structured ones are not:
their ``dtype.str`` does not say their fields)."""

_LENGTH = struct.Struct("<I")
_FLOAT = struct.Struct("<d")

# Tags of the elements of an object array.
_NONE, _FALSE, _TRUE, _INT, _FLOAT_TAG, _STR, _BYTES, _NUMPY = range(8)


class Unstorable(Exception):
    """An answer that the cache cannot give back as it is: it is not cached (not an outage)."""


class DamagedEntry(Exception):
    """An entry that does not read back: a miss for its key alone (not an outage)."""


def cache_key(version: ModelVersion, batch: Batch, outputs: Sequence[str]) -> str:
    """sha256 over the version and its artifact's sha256, the outputs asked for, and every
    input's dtype, shape and bytes. The artifact's hash, not the version's number alone: two
    registries (staging's and production's, say) sharing one Redis each have an ``iris:1`` of
    their own, and one served the other's answers."""
    head = f"{version.model}:{version.version}:{version.artifact_sha256}:{','.join(outputs)}"
    digest = hashlib.sha256(head.encode())
    for name in sorted(batch):
        array = batch[name]
        digest.update(f"|{name}:{array.dtype.str}:{array.shape}|".encode())
        if array.dtype.kind == "O":
            # Rows of text and numbers: the protocol's bytes spell None as "None" and 1.0 as
            # "1.0", so a missing value and that text (or a number and its text) need their
            # kinds beside them to be told apart.
            digest.update(bytes(_KINDS.get(type(v), 0) for v in array.flat))
            digest.update(encode_raw("BYTES", array))
        else:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def pack(outputs: Outputs) -> bytes:
    """Outputs as bytes: a JSON header (names, dtypes, shapes, sizes), then each array's
    bytes. Unstorable for an array or an element whose type would not come back as it is."""
    header = []
    chunks = []
    for name, given in outputs.items():
        array = np.asarray(given)
        if array.dtype.kind == "O":
            raw = _pack_objects(name, array)
            dtype = "O"
        elif array.dtype.kind in _FIXED_KINDS and array.dtype.fields is None:
            raw = np.ascontiguousarray(array).tobytes()
            dtype = array.dtype.str
        else:
            raise Unstorable(f"output {name!r} is of dtype {array.dtype}")
        header.append([name, dtype, list(array.shape), len(raw)])
        chunks.append(raw)
    head = orjson.dumps(header)
    return b"".join([MAGIC, _LENGTH.pack(len(head)), head, *chunks])


def unpack(data: bytes) -> Outputs:
    """What :func:`pack` packed, as fresh (writeable) arrays; DamagedEntry if ``data`` is not
    such an entry, whole."""
    try:
        return _unpack(memoryview(data))
    except DamagedEntry:
        raise
    except Exception as exc:  # any way a cut or foreign entry fails to read
        raise DamagedEntry(f"{type(exc).__name__}: {exc}") from exc


def _unpack(data: memoryview) -> Outputs:
    if bytes(data[:4]) != MAGIC:
        raise DamagedEntry("not an entry of this ModelPilot's layout")
    (length,) = _LENGTH.unpack_from(data, 4)
    offset = 8 + length
    header = orjson.loads(data[8:offset])
    result: Outputs = {}
    for name, dtype, shape, size in header:
        raw = data[offset : offset + size]
        if len(raw) != size:
            raise DamagedEntry(f"output {name!r} is cut short")
        count = math.prod(shape)
        if dtype == "O":
            result[name] = _unpack_objects(raw, count).reshape(shape)
        else:
            result[name] = np.frombuffer(raw, np.dtype(dtype), count).reshape(shape).copy()
        offset += size
    if offset != len(data):
        raise DamagedEntry(f"{len(data) - offset} bytes past its last output")
    return result


def _pack_objects(name: str, array: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for value in array.flat:
        kind = type(value)
        if value is None:
            parts.append(bytes((_NONE,)))
        elif kind is bool:
            parts.append(bytes((_TRUE if value else _FALSE,)))
        elif kind is int:
            parts.append(_sized(_INT, str(value).encode()))
        elif kind is float:
            parts.append(bytes((_FLOAT_TAG,)) + _FLOAT.pack(value))
        elif kind is str:
            parts.append(_sized(_STR, value.encode("utf-8", "surrogatepass")))
        elif kind is bytes:
            parts.append(_sized(_BYTES, value))
        elif isinstance(value, np.generic) and value.dtype.kind in _FIXED_KINDS:
            parts.append(_sized(_NUMPY, value.dtype.str.encode()))
            parts.append(_LENGTH.pack(value.dtype.itemsize) + value.tobytes())
        else:
            raise Unstorable(f"output {name!r} holds a {kind.__name__}")
    return b"".join(parts)


def _sized(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _LENGTH.pack(len(payload)) + payload


def _unpack_objects(raw: memoryview, count: int) -> np.ndarray:
    values: list[object] = []
    offset = 0
    while offset < len(raw):
        tag = raw[offset]
        offset += 1
        if tag in (_NONE, _FALSE, _TRUE):
            values.append(None if tag == _NONE else tag == _TRUE)
            continue
        if tag == _FLOAT_TAG:
            values.append(_FLOAT.unpack_from(raw, offset)[0])
            offset += _FLOAT.size
            continue
        payload, offset = _read_sized(raw, offset)
        if tag == _INT:
            values.append(int(payload.decode("ascii")))
        elif tag == _STR:
            values.append(payload.decode("utf-8", "surrogatepass"))
        elif tag == _BYTES:
            values.append(payload)
        elif tag == _NUMPY:
            dtype = np.dtype(payload.decode("ascii"))
            data, offset = _read_sized(raw, offset)
            values.append(np.frombuffer(data, dtype, 1)[0])
        else:
            raise DamagedEntry(f"unknown element tag {tag}")
    if len(values) != count:
        raise DamagedEntry(f"{len(values)} elements where the shape needs {count}")
    array = np.empty(count, dtype=object)
    array[:] = values
    return array


def _read_sized(raw: memoryview, offset: int) -> tuple[bytes, int]:
    (length,) = _LENGTH.unpack_from(raw, offset)
    start = offset + _LENGTH.size
    payload = bytes(raw[start : start + length])
    if len(payload) != length:
        raise DamagedEntry("an element is cut short")
    return payload, start + length
