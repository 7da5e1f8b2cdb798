"""How many rows of a batch ONNX Runtime is given at once, so that a wide graph's
intermediate tensors stay within a bound.

A scikit-learn pipeline converted to ONNX one-hot encodes its text columns densely: a column of
30,000 categories is 120 KB per row in ONNX Runtime, where scikit-learn kept a sparse matrix,
and its concatenation with the other features is as large again. 8,000 such rows took over
2 GB, which ONNX Runtime's memory arena then kept for the life of the model. Run in chunks
whose intermediates fit ``CHUNK_BYTES``, the same batch took 33 MB, and the arena keeps that
much (docs/memory.md has the figures). A batch that fits runs whole, as before: small
requests pay nothing but a look at their first input's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_BYTES = 64 * 1024 * 1024
"""Most bytes of per-row tensors (inputs, intermediates, outputs of the graph, added up) one
call to ONNX Runtime is given rows for. In chunks of this size an 8,000-row batch of a
pipeline of 500 inputs, one of them of 30,000 categories, took up to 1.7 times as long as
in one call (a call of that model costs 6 ms whatever its rows), for a hundredth of its
memory; the benchmark's 20-feature models are split only past 690,000 rows."""

WHOLE_ROWS = 256
"""Batches of up to this many rows run whole without a look at the graph: reading it (some
70 ms for a graph of 10 MB) is paid once, by the first larger batch, never by small requests;
a graph would need 256 KB of intermediates per row for such a batch to pass ``CHUNK_BYTES``."""

_STRING_BYTES = 32
"""What ONNX Runtime holds per element of a string tensor (a ``std::string``), short text
inline."""

RunGraph = Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]]


class RowsMixed(Exception):
    """A graph gave an output without a row per row fed: it does not compute rows apart."""


def bytes_per_row(path: Path) -> int:
    """Bytes per row of the graph's tensors (inputs, intermediates, outputs) at ``path``,
    added up; 0 where the graph cannot be read.

    Widths are ONNX's shape inference's where it knows them. Where it does not (ONNX-ML's
    ``Scaler`` has no shape function, so a ``Concat`` after it has no shape either), a node's
    output is taken as wide as its widest input, and a ``Concat`` as its inputs together: the
    concatenation of one-hot columns with the rest is the widest tensor of such a graph. The
    sum overstates what is alive at once (a tensor is freed once its last reader ran), but
    ONNX Runtime's arena keeps some slack beside it: on skl2onnx's one-hot pipelines, memory
    came out at 0.5 to 1.8 times the estimate of a chunk."""
    import onnx
    from onnx import shape_inference

    try:
        model = shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    except Exception:  # served all the same: without an estimate, batches run whole
        return 0
    graph = model.graph
    known = {
        value.name: size
        for value in (*graph.input, *graph.value_info, *graph.output)
        if (size := _row_bytes(value)) is not None
    }
    for node in graph.node:
        widths = [known[name] for name in node.input if name in known]
        if not widths:
            continue
        guess = sum(widths) if node.op_type == "Concat" else max(widths)
        for name in node.output:
            known.setdefault(name, guess)
    return sum(known.values())


def _row_bytes(value: Any) -> int | None:
    """Bytes per row of a tensor whose first dimension is free (the rows) and the others
    known; None for any other (a constant, a shape, a tensor of unknown width)."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape") or not tensor.shape.dim:
        return None
    first, *rest = tensor.shape.dim
    if first.HasField("dim_value") or not all(d.HasField("dim_value") for d in rest):
        return None
    width = int(np.prod([d.dim_value for d in rest], dtype=np.int64))
    return width * _element_bytes(tensor.elem_type)


def _element_bytes(elem_type: int) -> int:
    from onnx import TensorProto, helper

    if elem_type == TensorProto.STRING:
        return _STRING_BYTES
    try:
        return int(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 8


def rows_per_call(row_bytes: int) -> int | None:
    """Rows one call may take for a graph of ``row_bytes`` per row; None for no limit."""
    if row_bytes <= 0:
        return None
    return max(1, CHUNK_BYTES // row_bytes)


def run_in_chunks(run: RunGraph, feed: dict[str, np.ndarray], rows: int) -> list[np.ndarray]:
    """``run`` on ``feed`` in chunks of ``rows`` rows, outputs joined along the rows: the same
    arrays as one call on the whole batch, row for row, since the graph computes each row on
    its own (as every model served here must: the batcher joins requests the same way).

    RowsMixed if an output of a chunk does not have a row per row fed (a graph that
    reduces over its batch): the caller then runs the batch whole."""
    total = len(next(iter(feed.values())))
    parts: list[Sequence[np.ndarray]] = []
    for start in range(0, total, rows):
        chunk = {name: array[start : start + rows] for name, array in feed.items()}
        results = run(chunk)
        fed = min(rows, total - start)
        if any(np.ndim(r) == 0 or len(r) != fed for r in results):
            raise RowsMixed(f"an output has no row per row of a chunk of {fed}")
        parts.append(results)
    return [np.concatenate(columns) for columns in zip(*parts, strict=True)]
