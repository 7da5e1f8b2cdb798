"""The edges a served regressor's predictions are binned by: the reference predictions' edges,
moved off the reference values by the precision a served graph computes in."""

from __future__ import annotations

import numpy as np

ULPS = 64
"""How far (in units in the last place, at the size of the largest edge) a served prediction
may lie from the original model's of the same row. A float64 ONNX graph of a linear model
answered an ULP off scikit-learn's (-87.55498242406333 for -87.55498242406334, the reference
maximum); a float32 graph of boosted trees sums its trees in float32 and lands some ULPs
either side of the float64 sum rounded (2.7e-7 on values near 0.64, four ULPs). Two distinct
reference predictions closer than this to one another at an edge are rare: where there are,
the edge stays (see ``tolerant_bounds``)."""

FLOAT64_EPS = float(np.finfo(np.float64).eps)
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def tolerance(edges: np.ndarray, eps: float) -> float:
    """``ULPS`` units in the last place of a precision of machine epsilon ``eps``, at the size
    of the largest finite edge (0 where there is none)."""
    finite = np.abs(edges[np.isfinite(edges)])
    return ULPS * eps * float(finite.max()) if finite.size else 0.0


def tolerant_bounds(edges: np.ndarray, sample: np.ndarray, eps: float) -> tuple[np.ndarray, float]:
    """The lower edges and the top edge that predictions computed in a precision of machine
    epsilon ``eps`` are binned by, so that a reference row's prediction, served a little off
    the original's (within ``tolerance``, ``tol``), lands in the bin the original's did.

    The reference predictions (``sample``: the profile's sketch, which holds every value that
    holds many rows) were made by the original model in float64 at registration, and the
    edges are its values or its quantiles (``registry.profile.bin_edges``): a leaf-sum value
    of 22 rows was an edge, and the float32 graph's sum an ULP below it put 40% of those rows
    one bin low (prediction drift 0.12 on the reference's own rows); the reference maximum,
    served an ULP above it, counted "above the range". So an edge with reference values at or
    just past it (within ``tol``) and none just below (within ``2 tol``, so that a value below
    served ``tol`` high stays below) is lowered by ``tol``; one with reference values just
    below it and none at or just past it (``2 tol``) is raised by ``tol``. The top edge, which
    closes the last bin, is raised by ``tol`` where reference values lie within ``tol`` below
    it (the maximum). An edge with values close on both sides stays where it is, as do the
    edges of no value within ``tol`` (deciles between values): a value there is on the same
    side of the edge however it is rounded. Edges past float64's range (infinite) stay too.
    """
    tol = tolerance(edges, eps)
    lower = edges[:-1].astype(np.float64)
    top = float(edges[-1])
    ordered = np.sort(sample[np.isfinite(sample)])
    if not tol or not ordered.size:
        return lower, top

    def held(start: np.ndarray, stop: np.ndarray, closed_stop: bool) -> np.ndarray:
        """Whether reference values lie in [start, stop] (or [start, stop))."""
        first = np.searchsorted(ordered, start, side="left")
        last = np.searchsorted(ordered, stop, side="right" if closed_stop else "left")
        return last > first

    at_or_past = held(lower, lower + tol, True)
    below_near = held(lower - tol, lower, False)
    below_far = held(lower - 2 * tol, lower, False)
    past_far = held(lower, lower + 2 * tol, True)
    moved = np.where(at_or_past & ~below_far, lower - tol, lower)
    moved = np.where(below_near & ~past_far, lower + tol, moved)
    moved = np.where(np.isfinite(lower), moved, lower)
    below_top = held(np.array([top - tol]), np.array([top]), True)[0]
    if np.isfinite(top) and below_top:
        top += tol
    return moved, top
