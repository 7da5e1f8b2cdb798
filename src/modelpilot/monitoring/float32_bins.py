"""Binning features whose values are all float32 (a float32 model's inputs, a file's float32
columns) by edges rounded as they were (see ``binning``)."""

from __future__ import annotations

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)


def float32_edges(edges: np.ndarray, sample: np.ndarray) -> tuple[np.ndarray, float]:
    """The lower edges and the top edge that values which are all float32 are binned by: the
    edges rounded to float32, as a float32 model's inputs were.

    Compared with the float64 edges, those inputs fell in other bins than the reference rows
    they were cast from: 0.7, the first edge of its own bin (``registry.profile.bin_edges``),
    is 0.69999999 in float32, and values of the diabetes data's ``sex`` fell below the range
    (PSI 4.2 on a model's own reference rows). Compared with the rounded edges, a value counts
    past an edge when its float64 original was (or lay within float32's precision of it).
    Except where a reference value lies below an edge and rounds as it does: a decile a hair
    past a value (0.7 + 6e-14, interpolated next to it) put all of that value's rows below
    it, and its float32, the edge's, must stay there; that edge is raised to the next float32.
    An edge past float32's range stays as it is: values past it are infinite in float32, and
    count as missing, as every infinity does (see ``binning``)."""
    rounded = to_float32(edges)
    lower = rounded[:-1]
    ordered = np.sort(sample)
    if ordered.size:
        below = np.searchsorted(ordered, edges[:-1], side="left") - 1
        hair = (below >= 0) & (to_float32(ordered[np.maximum(below, 0)]) == lower)
        raised = np.nextafter(lower.astype(np.float32), np.float32(np.inf)).astype(np.float64)
        lower = np.where(hair, raised, lower)
    finite = np.isfinite(rounded)
    return np.where(finite[:-1], lower, edges[:-1]), float(rounded[-1] if finite[-1] else edges[-1])


def to_float32(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to float32, as float64 (past float32's range, infinite)."""
    with np.errstate(over="ignore"):
        return values.astype(np.float32).astype(np.float64)


def float32_rows(by_feature: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` (indices) of ``by_feature`` (one feature's values a row) hold float32
    values only (or NaN), as ``float32_valued`` tells of a whole array: each feature is binned
    by the edges for its own values.

    Decided for a batch as a whole, one column of float32 values beside float64 ones (a
    Parquet file's float32 column, pandas' downcast) was binned by the float64 edges: the
    reference's own rows read PSI 1.6. The first value rules most float64 features out at
    once, so only the others are looked at whole (this runs on every round of the monitor)."""
    single = np.zeros(rows.size, dtype=bool)
    if not by_feature.shape[1]:
        return ~single
    with np.errstate(over="ignore"):  # past float32's range: infinite, so not float32
        first = by_feature[rows, 0]
        candidates = (first.astype(np.float32) == first) | np.isnan(first)
        if np.count_nonzero(candidates):  # a tenth of .any()'s time
            picked = rows[candidates]
            looked = by_feature if picked.size == by_feature.shape[0] else by_feature[picked]
            same = looked.astype(np.float32) == looked
            held = same.all(axis=1)
            if not held.all():
                held = (same | np.isnan(looked)).all(axis=1)
            single[candidates] = held
    return single


def float32_valued(values: np.ndarray) -> bool:
    """Whether every value is a float32 (or NaN), as a float32 model's inputs are however
    they come (a float32 array; float64 numbers from the inference log, restored after a
    restart). Most float64 data shows otherwise in its first value, looked at first (a
    round's binning of a batch of 64 rows takes some 50 us; looking at it whole, 10 more)."""
    first = float(values.flat[0]) if values.size else 0.0
    if abs(first) < FLOAT32_MAX and float(np.float32(first)) != first:
        return False
    same = to_float32(values) == values
    return bool(same.all() or (same | np.isnan(values)).all())
