"""What the inference log holds, and how its batches are encoded and decoded.

A batch is the requests one monitoring round took in for one model version. Its inputs and
outputs are stored column-wise (one array per name holding every row of every request, with
each request's row count beside it), in one of two encodings:

- packed: numbers as their raw bytes behind a small JSON header of names, dtypes and shapes.
  Writing it is a copy, with no number turned into text (that conversion was most of what
  logging a request cost the monitor thread);
- JSON: for arrays that have no fixed-size number type (strings, bytes, objects), one object
  of nested arrays.

Logs written before row counts existed hold one JSON object per request instead; they are
still read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

PACKED_KINDS = frozenset("biuf")
"""NumPy kinds stored as raw bytes: booleans, integers, floats."""


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
    return orjson.dumps(
        {name: v[first:] if isinstance(v, list) else v for name, v in arrays.items()}
    ).decode()


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
    """Arrays as JSON can hold them: numbers as numbers, bytes as text, NaN as null."""
    out: dict[str, Any] = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            out[name] = np.where(np.isfinite(array), array.astype(object), np.array(None)).tolist()
        elif array.dtype.kind in "OSU":
            out[name] = [_text(v) for v in array.ravel()]
            if array.ndim > 1:
                out[name] = np.array(out[name], dtype=object).reshape(array.shape).tolist()
        else:
            out[name] = array.tolist()
    return out


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """A JSON object of nested arrays: numbers straight from NumPy in one call."""
    try:
        return orjson.dumps(dict(arrays), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:  # object arrays (bytes, strings), or views that are not contiguous
        return orjson.dumps(jsonable(arrays)).decode()


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
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
        # Column-wise: name -> all rows, as arrays (packed) or nested lists (JSON).
        self._columns: tuple[Mapping[str, Any], Mapping[str, Any]] = ({}, {})
        self._packed = row.get("packed") is not None
        if row["row_counts"] is None:  # written before row counts: one object per request
            self._per_request = (orjson.loads(row["inputs"]), orjson.loads(row["outputs"]))
            _check(len(self._per_request[0]) == len(self._per_request[1]) == len(self.times))
        else:
            if self._packed:
                self._columns = unpack_arrays(bytes(row["packed"]))
            else:
                self._columns = (orjson.loads(row["inputs"]), orjson.loads(row["outputs"]))
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
                {name: values[start:end] for name, values in columns.items()}
                for columns in self._columns
            )
            if self._packed:
                inputs, outputs = jsonable(inputs), jsonable(outputs)
        return LogEntry(
            self.request_ids[position],
            self.model,
            self.version,
            float(self.times[position]),
            inputs,
            outputs,
            label,
        )


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
