"""What the inference log holds, and how its batches are encoded and decoded.

A batch is the requests one monitoring round took in for one model version. Its inputs and
outputs are stored column-wise (one array per name holding every row of every request, with
each request's row count beside it), in one of two encodings:

- packed: numbers as their raw bytes behind a small JSON header of names, dtypes and shapes.
  Writing it is a copy, with no number turned into text (that conversion was most of what
  logging a request cost the monitor thread);
- JSON: for arrays that have no fixed-size number type (strings, bytes, objects), one object
  of nested arrays. What JSON cannot hold exactly is marked: an array of floats holding +inf
  or -inf (which JSON would write as null, read back as a missing value) as its raw bytes
  (:data:`RAW`), bytes that are not UTF-8 (which text would hold with U+FFFD) as base64
  (:data:`BASE64`).

Logs written before row counts existed hold one JSON object per request instead; they are
still read.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

PACKED_KINDS = frozenset("biuf")
"""NumPy kinds stored as raw bytes: booleans, integers, floats."""

RAW = "$raw"
"""Key of a JSON column that holds an array of floats as its raw bytes, in base64 (beside
``dtype`` and ``shape``): one with +inf or -inf, which JSON has no literal for."""

BASE64 = "$base64"
"""Key of a JSON column of bytes, some not UTF-8: nested lists of each value's bytes in
base64 (text as its UTF-8 bytes; anything else as it is). Each reads back on its own, as in a
column without the mark: text where its bytes are UTF-8, bytes where not. Read back as bytes
all, one binary input turned the text of every other request of its round into bytes."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    request_id: str
    model: str
    version: int
    created_at: float
    inputs: dict[str, Any]
    """Input name -> nested lists, as the model saw it."""
    outputs: dict[str, Any]
    label: Any = None


@dataclass(frozen=True, slots=True)
class LogBatch:
    """Requests of one version, encoded for the log (see :func:`log_batch`)."""

    model: str
    version: int
    request_ids: list[str]
    times: list[float]
    rows: list[int]
    """Rows of each request, in order: request ``i`` has the next ``rows[i]`` rows."""
    packed: bytes | None
    """Inputs and outputs packed (:func:`pack_arrays`); None when they are JSON below."""
    inputs: str = ""
    """Input name -> all rows as JSON (``encode_arrays``), when not packed."""
    outputs: str = ""


def log_batch(
    model: str,
    version: int,
    request_ids: list[str],
    times: list[float],
    rows: list[int],
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
) -> LogBatch:
    """A batch for the log: packed when every array holds plain numbers, else JSON."""
    packed = pack_arrays(inputs, outputs)
    if packed is not None:
        return LogBatch(model, version, request_ids, times, rows, packed)
    return LogBatch(
        model,
        version,
        request_ids,
        times,
        rows,
        None,
        encode_arrays(inputs),
        encode_arrays(outputs),
    )


def newest(batch: LogBatch, count: int) -> LogBatch:
    """The last ``count`` requests of ``batch`` (``batch`` itself if it holds no more), as a
    batch of their own: what the log keeps of a batch larger than its bound.

    Decoded and encoded again, so not free; only a batch larger than the log's bound comes
    here, and it is then smaller to write."""
    cut = len(batch.request_ids) - count
    if cut <= 0:
        return batch
    first = sum(batch.rows[:cut])
    packed: bytes | None = None
    inputs = outputs = ""
    if batch.packed is not None:
        packed_inputs, packed_outputs = unpack_arrays(batch.packed)
        packed = pack_arrays(_rows_from(packed_inputs, first), _rows_from(packed_outputs, first))
    else:
        inputs = _json_rows_from(batch.inputs, first)
        outputs = _json_rows_from(batch.outputs, first)
    return LogBatch(
        batch.model,
        batch.version,
        batch.request_ids[cut:],
        batch.times[cut:],
        batch.rows[cut:],
        packed,
        inputs,
        outputs,
    )


def _rows_from(arrays: Mapping[str, np.ndarray], first: int) -> dict[str, np.ndarray]:
    """Each array from row ``first`` on (rows are its first axis, as ``DecodedBatch`` reads
    them; one without an axis has no rows to leave out)."""
    return {name: a[first:] if a.ndim else a for name, a in arrays.items()}


def _json_rows_from(text: str, first: int) -> str:
    """JSON columns (``encode_arrays``) from row ``first`` on."""
    arrays: dict[str, Any] = orjson.loads(text)
    return orjson.dumps({name: _column_from(v, first) for name, v in arrays.items()}).decode()


def _column_from(column: Any, first: int) -> Any:
    """One JSON column from row ``first`` on, marked as it was."""
    if isinstance(column, list):
        return column[first:]
    if isinstance(column, dict) and RAW in column:
        array = _unmarked(column)
        return _raw(array[first:] if array.ndim else array)
    if isinstance(column, dict) and BASE64 in column:
        values = column[BASE64]
        return {BASE64: values[first:] if isinstance(values, list) else values}
    return column


def pack_arrays(
    inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]
) -> bytes | None:
    """Both sets of arrays as one blob: header length, JSON header, then each array's bytes.

    None when an array is not made of booleans or numbers.
    """
    header: dict[str, list[tuple[str, str, list[int]]]] = {"inputs": [], "outputs": []}
    buffers: list[memoryview] = []
    for part, arrays in (("inputs", inputs), ("outputs", outputs)):
        for name, array in arrays.items():
            array = np.asarray(array)
            if not array.flags.c_contiguous:  # joined below straight from its memory
                array = np.ascontiguousarray(array)
            if array.dtype.kind not in PACKED_KINDS:
                return None
            header[part].append((name, array.dtype.str, list(array.shape)))
            buffers.append(array.data)
    head = orjson.dumps(header)
    return b"".join([len(head).to_bytes(4, "little"), head, *buffers])


def unpack_arrays(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """What :func:`pack_arrays` packed: (inputs, outputs), arrays over ``blob``'s memory."""
    size = int.from_bytes(blob[:4], "little")
    header = orjson.loads(blob[4 : 4 + size])
    offset = 4 + size
    parts: list[dict[str, np.ndarray]] = []
    for part in ("inputs", "outputs"):
        arrays: dict[str, np.ndarray] = {}
        for name, dtype_str, shape in header[part]:
            dtype = np.dtype(dtype_str)
            count = math.prod(shape)
            arrays[name] = np.frombuffer(blob, dtype, count, offset).reshape(shape)
            offset += count * dtype.itemsize
        parts.append(arrays)
    return parts[0], parts[1]


def jsonable(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Arrays as a ``LogEntry`` holds them (see :func:`_listed`)."""
    return {name: _listed(np.asarray(array)) for name, array in arrays.items()}


def _listed(array: np.ndarray) -> Any:
    """An array as nested lists: numbers as numbers (+inf and -inf too), NaN as None, bytes
    as text where they are UTF-8 (bytes where not)."""
    if array.dtype.kind == "f" and np.isnan(array).any():
        return np.where(np.isnan(array), np.array(None), array.astype(object)).tolist()
    if array.dtype.kind in "OSU":
        return _shaped([_text(v) for v in array.ravel()], array)
    return array.tolist()


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """A JSON object of nested arrays: numbers straight from NumPy in one call, and what JSON
    cannot hold exactly marked (see :data:`RAW`, :data:`BASE64`)."""
    columns = {name: _json_column(np.asarray(array)) for name, array in arrays.items()}
    try:
        return orjson.dumps(columns, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:  # views that are not contiguous
        return orjson.dumps(
            {n: c.tolist() if isinstance(c, np.ndarray) else c for n, c in columns.items()}
        ).decode()


def _json_column(array: np.ndarray) -> Any:
    """What ``encode_arrays`` writes of ``array``: itself (orjson writes NaN as null, the
    missing value it is read back as), or nested lists of text, or a marked column."""
    if array.dtype.kind == "f" and np.isinf(array).any():
        return _raw(array)
    if array.dtype == np.float16:
        # orjson writes a half as the shortest float32 text (0.1 as 0.099975586), which
        # reads back as another number; each half is a float64 exactly, written so.
        return array.astype(np.float64)
    if array.dtype.kind in "OSU":
        values = [_text(v) for v in array.ravel()]
        if any(isinstance(v, bytes) for v in values):
            return {BASE64: _shaped([_base64(v) for v in values], array)}
        return _shaped(values, array)
    return array


def decode_arrays(text: str) -> dict[str, Any]:
    """What :func:`encode_arrays` wrote: nested lists, or for a marked column what it holds
    (an array of :data:`RAW`, nested lists of bytes of :data:`BASE64`)."""
    columns = orjson.loads(text)
    if not isinstance(columns, dict):
        raise ValueError("logged columns that are not a JSON object")
    for name, column in columns.items():
        if isinstance(column, dict):
            columns[name] = _unmarked(column)
    return columns


def _raw(array: np.ndarray) -> dict[str, Any]:
    return {
        RAW: base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii"),
        "dtype": array.dtype.str,
        "shape": list(array.shape),
    }


def _unmarked(column: Mapping[str, Any]) -> Any:
    if RAW in column:
        dtype = np.dtype(column["dtype"])
        if dtype.kind not in PACKED_KINDS:
            raise ValueError(f"a logged column of raw {dtype}")
        data = base64.b64decode(column[RAW], validate=True)
        return np.frombuffer(data, dtype).reshape(column["shape"])
    if BASE64 in column:
        return _unbase64(column[BASE64])
    raise ValueError(f"a logged column of unknown form (keys {sorted(column)})")


def _unbase64(values: Any) -> Any:
    """A :data:`BASE64` column's values: each as ``_text`` has it (text where UTF-8)."""
    if isinstance(values, list):
        return [_unbase64(v) for v in values]
    if isinstance(values, str):
        return _text(base64.b64decode(values, validate=True))
    return values


def _shaped(values: list[Any], array: np.ndarray) -> Any:
    """``array``'s values, listed flat, nested again as ``array`` is."""
    if array.ndim > 1:
        return np.array(values, dtype=object).reshape(array.shape).tolist()
    return values


def _base64(value: Any) -> Any:
    """A value as ``_text`` made it, in a :data:`BASE64` column."""
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _text(value: Any) -> Any:
    """Bytes as text where they are UTF-8 (as most BYTES tensors are): bytes where not."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return bytes(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class DecodedBatch:
    """One stored batch, decoded once however many of its requests are wanted."""

    def __init__(self, row: Mapping[Any, Any]) -> None:
        self.model = str(row["model"])
        self.version = int(row["version"])
        self.request_ids: list[str] = orjson.loads(row["request_ids"])
        self.times: list[float] = [float(t) for t in orjson.loads(row["times"])]
        self._per_request: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
        # Column-wise: name -> all rows, as arrays (packed, or marked in JSON) or nested
        # lists (JSON).
        self._columns: tuple[Mapping[str, Any], Mapping[str, Any]] = ({}, {})
        self._packed = row.get("packed") is not None
        if row["row_counts"] is None:  # written before row counts: one object per request
            self._per_request = (orjson.loads(row["inputs"]), orjson.loads(row["outputs"]))
            _check(len(self._per_request[0]) == len(self._per_request[1]) == len(self.times))
        else:
            if self._packed:
                self._columns = unpack_arrays(bytes(row["packed"]))
            else:
                self._columns = (decode_arrays(row["inputs"]), decode_arrays(row["outputs"]))
            self.starts = [0]
            for rows in orjson.loads(row["row_counts"]):
                self.starts.append(self.starts[-1] + int(rows))
            _check(len(self.starts) == len(self.times) + 1)
        # Damaged bytes may still decode: what does not add up is refused here, not when one
        # of its requests is asked for.
        _check(len(self.request_ids) == len(self.times))

    def holds(self, request_id: str, position: int) -> bool:
        """Whether request ``request_id`` is at ``position`` of this batch."""
        return 0 <= position < len(self.request_ids) and self.request_ids[position] == request_id

    def entry(self, position: int, label: Any) -> LogEntry:
        inputs: dict[str, Any]
        outputs: dict[str, Any]
        if self._per_request is not None:
            inputs, outputs = self._per_request[0][position], self._per_request[1][position]
        else:
            start, end = self.starts[position], self.starts[position + 1]
            inputs, outputs = (
                {name: _rows(values, start, end) for name, values in columns.items()}
                for columns in self._columns
            )
        return LogEntry(
            self.request_ids[position],
            self.model,
            self.version,
            float(self.times[position]),
            inputs,
            outputs,
            label,
        )


def _rows(values: Any, start: int, end: int) -> Any:
    """Rows ``start`` to ``end`` of a column as nested lists: an array's (packed, or marked in
    JSON) listed, JSON's as they are."""
    part = values[start:end]
    return _listed(part) if isinstance(part, np.ndarray) else part


def _check(consistent: bool) -> None:
    if not consistent:
        raise ValueError("a logged batch whose request ids, times and rows do not add up")


def rows_of(values: Mapping[str, Any]) -> int:
    """Rows of one request's values (nested lists): the length of its first one."""
    first: Any = next(iter(values.values()), [])
    return len(first) if isinstance(first, list) else 1


def columns(items: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Requests' values (nested lists, one entry per row) joined into one list per name."""
    out: dict[str, list[Any]] = {}
    for item in items:
        for name, values in item.items():
            out.setdefault(name, []).extend(values if isinstance(values, list) else [values])
    return out
