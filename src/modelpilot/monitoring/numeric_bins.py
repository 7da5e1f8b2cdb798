"""A numeric feature's bins: the reference's edges and counts, where each bin's reference mass
lies (for Wasserstein), its spread, and the reference values the KS test compares a window's
with. ``ProfileBinning`` lays these end to end with the categorical features' bins
(``category_bins``).

A numeric feature's bins are ``[below reference min, reference bins..., above reference max,
missing]``, where missing is NaN and +/-inf alike, as in the reference profile.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelpilot.registry.profile import FeatureProfile


@dataclass(frozen=True, slots=True)
class NumericBins:
    """A numeric feature's bins: its edges, the reference's counts and where their mass lies,
    and what the KS test compares a window with."""

    index: int
    offset: int
    edges: np.ndarray
    reference: np.ndarray
    points: np.ndarray
    """Where each bin's reference mass lies, for Wasserstein (see ``_reference_points``)."""
    scale: float
    sample: np.ndarray
    """The reference values that the KS test compares a window's with, in order: the
    reference itself where it is at hand (``modelpilot drift REF CUR``), else the profile's
    sketch of all its values (``FeatureProfile.sketch``), else, in a profile made before
    sketches, its sample of 256 rows."""
    sample_rows: int
    """How many reference values ``sample`` stands for, the KS test's reference size: all the
    reference's finite values for a sketch, else its own size."""
    float32: bool
    """The reference was stored as float32: a window's values are rounded to float32."""

    @property
    def width(self) -> int:
        return self.edges.size - 1 + 3


def numeric_bins(
    index: int, offset: int, feature: FeatureProfile, sample: np.ndarray | None, whole: bool
) -> NumericBins:
    """A numeric feature's bins; ``sample``: its reference values at hand, all of them when
    ``whole``, else the profile's sample rows'."""
    edges = np.asarray(feature.bin_edges, dtype=np.float64)
    if edges.size < 2:  # a column with no finite reference value: everything is out of range
        edges = np.array([0.0, 0.0])
    counts = np.zeros(edges.size - 1 + 3, dtype=np.int64)
    counts[1 : edges.size] = feature.bin_counts or 0
    counts[-1] = feature.missing
    column = np.empty(0) if sample is None else sample[np.isfinite(sample)]
    points = _reference_points(edges, column, feature.bin_means)
    tested, rows = np.sort(column), column.size
    if feature.sketch and not whole:
        # Every window against the whole reference, not against one sample of it, whose luck
        # the p-value (valid over fresh samples) would carry to every window: see
        # ``registry.profile.quantile_sketch``.
        tested = np.asarray(feature.sketch, dtype=np.float64)
        rows = feature.count - feature.missing
    scale = _spread(feature)
    return NumericBins(index, offset, edges, counts, points, scale, tested, rows, feature.float32)


def _reference_points(
    edges: np.ndarray, sample: np.ndarray, means: Sequence[float | None] = ()
) -> np.ndarray:
    """Where the reference's mass lies in each bin: its mean in the whole reference (the
    profile's ``bin_means``), else that of the profile's sample rows in it, else (no sample
    row there) the bin's midpoint.

    A bin's midpoint misplaces its mass: a bell curve's outer deciles are far from their
    means, and a midpoint of 0.5 for a bin of zeros made identical windows of a feature of
    whole numbers differ. The sample (256 rows, about 25 per decile), which profiles made
    before ``bin_means`` are left with, puts the means within a few hundredths of a standard
    deviation, which doubled Wasserstein's floor on windows drawn from the reference itself
    (0.037 where scipy's, on the same rows, was 0.019). Below and above the range there is no
    reference mass; their points are placeholders (the edges) that the window's own means
    replace."""
    inner = edges.size - 1
    lower, upper = edges[:-1], edges[1:]
    points = (lower + upper) / 2
    if len(means) == inner:
        known = np.array([m is not None for m in means])
        values = np.array([m if m is not None else 0.0 for m in means], dtype=np.float64)
        points[known] = np.clip(values[known], lower[known], upper[known])
        return np.concatenate([[edges[0]], points, [edges[-1]]])
    sample = sample[np.isfinite(sample)]
    if sample.size:
        slot = np.clip(np.searchsorted(edges, sample, side="right") - 1, 0, inner - 1)
        rows = np.bincount(slot, minlength=inner)
        total = np.bincount(slot, weights=sample, minlength=inner)
        seen = rows > 0
        points[seen] = np.clip(total[seen] / rows[seen], lower[seen], upper[seen])
    return np.concatenate([[edges[0]], points, [edges[-1]]])


def _spread(feature: FeatureProfile) -> float:
    """What Wasserstein is divided by: the reference std; a stated stand-in when constant
    (its absolute mean, else 1); NaN, which leaves Wasserstein undefined, when the profile
    has no std (a column with no finite value, or one whose std overflowed)."""
    if feature.std is None or not math.isfinite(feature.std):
        return math.nan
    if feature.std:
        return float(feature.std)
    if feature.mean:
        return abs(float(feature.mean))
    return 1.0


def sample_column(sample: np.ndarray | None, index: int) -> np.ndarray | None:
    if sample is None or sample.size == 0:
        return None
    return float_column(sample, index)


def float_column(rows: np.ndarray, index: int) -> np.ndarray:
    """A numeric feature's column as floats, whatever else is missing there (pandas' NA in a
    nullable column crashed the KS test's sample)."""
    try:
        return np.asarray(rows[:, index], dtype=np.float64)
    except (TypeError, ValueError):
        return to_float(rows[:, index : index + 1])[:, 0]


def to_float(values: np.ndarray) -> np.ndarray:
    out = np.full(values.shape, np.nan)
    for position, value in np.ndenumerate(values):
        with contextlib.suppress(TypeError, ValueError):
            out[position] = float(value)
    return out
