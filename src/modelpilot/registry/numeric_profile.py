"""A numeric feature's reference summary: its bin edges and the sketch of its values that the
KS test reads."""

from __future__ import annotations

import numpy as np

QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
HISTOGRAM_BINS = 10
SKETCH_LEVELS = 1024
"""How many of a numeric feature's reference values its profile keeps for the KS test (see
``quantile_sketch``): their distribution function is the whole reference's within 1/2,048.
The KS test runs on windows of fewer than 1,000 rows, whose own distribution function moves
in steps of 1/999 or more, and flags distances of 0.054 and more (0.01 over two tests of one
feature, 999 rows, against any reference); an error a hundredth of that moves the p-value
there by about a tenth, as much as Stephens' approximation of it errs. Twice the levels would
halve that for twice the bytes (8 KB a feature at 1,024, stored as float64: see
``profile_storage``)."""


def bin_edges(finite: np.ndarray) -> np.ndarray:
    """The bin edges of a numeric feature's finite reference values: its deciles, except that
    single values get bins of their own where the column has at most ``HISTOGRAM_BINS``
    distinct values (held by two rows each, on average), or where one value holds a tenth of
    the rows or more (an atom: the zeros of a zero-inflated amount, a cap).

    Deciles merge such values: a 0/1 flag's unique deciles were [0, 1], one bin holding both,
    so PSI and Jensen-Shannon read 0 however their shares moved (32% ones against 95% ones,
    whose PSI is 2.3), and on large windows, where PSI alone decides, the flag could never
    drift. A value's bin runs from it to the next reference value, so that of the reference
    it holds that value alone; a top value of its own ends the edges twice (``[..., 9, 9]``),
    as a constant column's ``[c, c]`` always did, for the last bin is closed (as in
    ``np.histogram``) and then holds just that value. The values between the atoms get bins
    of their quantiles, as many as the tenths of the rows they hold. So every edge is still a
    reference value or quantile, and values bin by the same rule: in the bin of the last edge
    at or below them, the top edge closing the last bin."""
    values, where, counts = np.unique(finite, return_inverse=True, return_counts=True)
    few = values.size <= HISTOGRAM_BINS and 2 * values.size <= finite.size
    if few or values.size == 1:
        atoms = np.ones(values.size, dtype=bool)
    else:
        atoms = (counts * HISTOGRAM_BINS >= finite.size) & (counts > 1)
    if not atoms.any():
        return np.unique(np.quantile(finite, np.linspace(0, 1, HISTOGRAM_BINS + 1)))
    following = np.flatnonzero(atoms) + 1
    cuts = [values[:1], values[-1:], values[atoms], values[following[following < values.size]]]
    rest = finite[~atoms[where.ravel()]]
    if rest.size:
        parts = max(1, round(HISTOGRAM_BINS * rest.size / finite.size))
        cuts.append(np.quantile(rest, np.linspace(0, 1, parts + 1)[1:-1]))
    edges = np.unique(np.concatenate(cuts))
    return np.append(edges, values[-1]) if atoms[-1] else edges


def quantile_sketch(finite: np.ndarray, levels: int = SKETCH_LEVELS) -> np.ndarray:
    """A numeric feature's finite reference values in order, or where there are more than
    ``levels``, the ones at the evenly spaced quantile levels ``(i - 1/2) / levels``: the
    value of rank ``ceil((i - 1/2) * n / levels)`` of the ``n``, for ``i`` from 1 to ``levels``.

    Read as a sample (the share of its values at or below ``t``), it gives the whole
    reference's distribution function within ``1 / (2 * levels)`` at every ``t``, ties
    included (a value holding many rows recurs in it as often as its share says), exactly
    below the smallest value and from the largest on. So the KS test can compare a window
    with all of the reference, not with a sample of it: the two-sample p-value holds only
    averaged over fresh reference samples, and the monitor compares every window of a
    version's life with the one it keeps. Against the 256 rows the profile once kept, a
    feature whose sample came out off by chance (one-sample KS p = 0.001 against its true
    law) was flagged in 6% of windows of 999 rows drawn as the reference was, the level of
    its test being 0.04%. Order statistics rather than interpolated quantiles, so that
    every value is one the reference held."""
    ordered = np.sort(np.asarray(finite, dtype=np.float64))
    if ordered.size <= levels:
        return ordered
    level = np.arange(1, levels + 1, dtype=np.int64)
    ranks = ((2 * level - 1) * ordered.size + 2 * levels - 1) // (2 * levels)
    return ordered[ranks - 1]
