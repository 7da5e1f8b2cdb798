"""A version's numeric features judged together: their bins stacked as [features x bins]
arrays, one NumPy call per statistic for all of them, with the figures that ``drift.
judge_numeric`` gives each feature on its own (to the bit, as each is the same arithmetic on
each row: a row's sum is the sum of that row alone, ``matmul`` of a row with a row the
``dot`` of the two).

Judged feature by feature, a model of 2,000 numbers took the serving process's monitor thread
0.2-0.45 s of the interpreter lock every evaluation, in some forty NumPy calls per feature on
arrays of a dozen bins, and requests waited behind it up to 100-150 ms. Stacked, the calls are
few, on arrays large enough that NumPy lets go of the lock while it works. Features are
stacked by their number of bins (most of a model's have ten), so that no row is padded; the
tests that read a window's values (KS) run together as well (``stacked_ks``), and Fisher's
test of the missing share only where both samples have a value missing (elsewhere it has
nothing to tell apart: p = 1). Each feature's verdict is then worded by ``drift``'s own rule.
"""

from __future__ import annotations

import math

import numpy as np

from modelpilot.monitoring.divergence import EPSILON, fisher_exact, probabilities
from modelpilot.monitoring.drift import (
    numeric_stage,
    observed_scores,
    psi_verdict,
    tested_verdict,
)
from modelpilot.monitoring.drift_results import (
    DriftThresholds,
    FeatureDrift,
    missing_share,
    unobserved,
)
from modelpilot.monitoring.numeric_bins import NumericBins, float_column
from modelpilot.monitoring.stacked_ks import StackedSketches


class _Width:
    """The numeric features of one width (bins), stacked: what their reference holds."""

    def __init__(self, specs: list[NumericBins], positions: np.ndarray, sums: np.ndarray) -> None:
        self.positions = positions
        width = specs[0].width
        located = width - 1  # bins of values present: below, the reference's, above
        self.counts = np.array([s.offset for s in specs])[:, None] + np.arange(width)
        """Where each feature's bins are in the flat counts."""
        self.sums = np.array(
            [
                [2 * p, *range(int(sums[p]), int(sums[p + 1])), 2 * p + 1]
                for p in positions.tolist()
            ],
            dtype=np.int64,
        ).reshape(-1, located)
        """Where each feature's sums of values are in the flat sums, in the order of its bins."""
        self.reference = np.stack([s.reference for s in specs])
        self.smoothed = np.stack([probabilities(s.reference, EPSILON) for s in specs])
        self.shares = np.stack([probabilities(s.reference) for s in specs])
        self.points = np.stack([s.points for s in specs])
        edges = np.stack([s.edges for s in specs])
        infinite = np.full((len(specs), 1), np.inf)
        self.lower = np.concatenate([-infinite, edges], axis=1)
        self.upper = np.concatenate([edges, infinite], axis=1)
        self.scale = np.array([s.scale for s in specs], dtype=np.float64)
        mass = self.reference[:, :located].astype(np.float64)
        self.mass_total = mass.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):  # none: Wasserstein is NaN
            self.mass = mass / self.mass_total[:, None]
        self.values = self.reference[:, :-1].sum(axis=1)
        self.rows = self.reference.sum(axis=1)

    def scores(
        self, counts: np.ndarray, sums: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each feature's window counts, PSI, Jensen-Shannon, KL and Wasserstein (as
        ``drift._scores`` and ``divergence.wasserstein`` give them) and KS p-value on the
        reference's bins (as ``divergence.ks_binned``); NaN where the window is empty."""
        current = counts[self.counts]
        located = current[:, : self.points.shape[1]]
        with np.errstate(invalid="ignore", divide="ignore"):
            # Each bin's mean where the window has values there: see _judge_numeric.
            means = np.clip(sums[self.sums] / located, self.lower, self.upper)
            points = np.where(located > 0, means, self.points)
            numbers = current.astype(np.float64)
            rows = numbers.sum(axis=1, keepdims=True)
            shares = numbers / rows
            smoothed = np.where(shares > 0, shares, EPSILON)
            smoothed = smoothed / smoothed.sum(axis=1, keepdims=True)
            log_ratio = np.log(smoothed / self.smoothed)
            psi = _rowwise_dot(smoothed - self.smoothed, log_ratio)
            kl = _rowwise_dot(smoothed, log_ratio)
            js = _js_distance(self.shares, shares)
            w = self._wasserstein(points, located.astype(np.float64))
            ks = _ks_binned(self.reference[:, :-1], current[:, :-1])
        return current, psi, js, kl, w, ks

    def _wasserstein(self, points: np.ndarray, located: np.ndarray) -> np.ndarray:
        """``divergence.wasserstein`` of each feature's row."""
        total = located.sum(axis=1)
        both = np.concatenate([self.points, points], axis=1)
        weights = np.concatenate([self.mass, -located / total[:, None]], axis=1)
        order = np.argsort(both, axis=1, kind="stable")
        gaps = np.diff(np.take_along_axis(both, order, axis=1), axis=1)
        below = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)[:, :-1]
        distance = _rowwise_dot(np.abs(below), gaps) / self.scale
        return np.where((self.mass_total > 0) & (total > 0), distance, math.nan)


class NumericStack:
    """A version's numeric features (``ProfileBinning``'s), judged together."""

    def __init__(self, specs: list[NumericBins], names: list[str], inner_sums: np.ndarray):
        self.names = [names[s.index] for s in specs]
        self.columns = np.array([s.index for s in specs], dtype=np.intp)
        widths = np.array([s.width for s in specs], dtype=np.int64)
        self.widths: list[_Width] = []
        for width in np.unique(widths):
            positions = np.flatnonzero(widths == width)
            group = [specs[p] for p in positions]
            self.widths.append(_Width(group, positions, inner_sums))
        self.sketches = StackedSketches([s.sample for s in specs])
        self.reference_rows = np.array([s.sample_rows for s in specs], dtype=np.int64)
        self.float32 = np.array([s.float32 for s in specs], dtype=bool)
        self._references = [s.reference for s in specs]
        self._reference_missing = [missing_share(s.reference) for s in specs]
        self._unobserved: list[FeatureDrift | None] = [None] * len(specs)
        """Each feature over an empty window, made when first needed."""

    def judge(
        self,
        counts: np.ndarray,
        sums: np.ndarray,
        recent: np.ndarray | None,
        thresholds: DriftThresholds,
    ) -> list[FeatureDrift]:
        """Every numeric feature's scores and verdict, in the order of ``specs``, as
        ``drift.judge_numeric`` gives them (see ``ProfileBinning._judge_numeric``)."""
        size = len(self.names)
        rows, values, missing, reference_missing, reference_rows = (
            np.zeros(size, dtype=np.int64) for _ in range(5)
        )
        psi, js, kl, w, binned_p = (np.zeros(size) for _ in range(5))
        for width in self.widths:
            current, *scores = width.scores(counts, sums)
            at = width.positions
            psi[at], js[at], kl[at], w[at], binned_p[at] = scores
            rows[at], missing[at] = current.sum(axis=1), current[:, -1]
            values[at], reference_missing[at] = width.values, width.reference[:, -1]
            reference_rows[at] = width.rows
        large = thresholds.large_sample_rows
        tested = (rows >= thresholds.min_rows) & (np.minimum(rows, values) < large)
        on_values = tested & (rows < large) if recent is not None else np.zeros(size, bool)
        ks_p = binned_p
        if on_values.any():
            assert recent is not None
            ks_p = np.where(on_values, self._ks_p(recent, on_values), binned_p)
        missing_p = np.ones(size)
        # Fisher's test has one possible count, so nothing to tell apart, unless both the
        # missing values and the values present outnumber nothing in the two samples.
        together = reference_missing + missing
        present = reference_rows + rows - together
        for position in np.flatnonzero(tested & (together > 0) & (present > 0)).tolist():
            missing_p[position] = fisher_exact(
                int(reference_missing[position]),
                int(reference_rows[position]),
                int(missing[position]),
                int(rows[position]),
            )
        counted = zip(rows.tolist(), values.tolist(), missing.tolist(), strict=True)
        scores = np.stack([psi, js, kl, w], axis=1).tolist()
        tests = zip(ks_p.tolist(), (~on_values).tolist(), missing_p.tolist(), strict=True)
        return [
            self._verdict(position, *numbers, (*scored,), tested, thresholds)
            for position, (numbers, scored, tested) in enumerate(
                zip(counted, scores, tests, strict=True)
            )
        ]

    def _verdict(
        self,
        position: int,
        rows: int,
        values: int,
        missing: int,
        scores: tuple[float, float, float, float],
        tests: tuple[float, bool, float],
        thresholds: DriftThresholds,
    ) -> FeatureDrift:
        name = self.names[position]
        if not rows:
            found = self._unobserved[position]
            if found is None:
                found = unobserved(name, "numeric", self._references[position])
                self._unobserved[position] = found
            return found
        shares = (missing / rows, self._reference_missing[position])
        observed = observed_scores(name, "numeric", rows, scores, shares, thresholds)
        stage = numeric_stage(rows, values, thresholds)
        if stage == "observed":
            return observed
        if stage == "psi":
            return psi_verdict(observed, thresholds)
        return tested_verdict(observed, values, *tests, thresholds)

    def _ks_p(self, recent: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """The KS p-values of the ``wanted`` features' values in ``recent``."""
        try:
            window = np.asarray(recent[:, self.columns], dtype=np.float64)
        except (TypeError, ValueError):  # numbers beside text, or pandas' NA among them
            window = np.stack([float_column(recent, c) for c in self.columns.tolist()], axis=1)
        return self.sketches.p_values(window, wanted, self.reference_rows, self.float32)


def _rowwise_dot(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Each row of ``left`` dotted with the same row of ``right``: as ``np.dot`` of the two
    rows, to the bit (a sum of their products adds in another order)."""
    return np.asarray(np.matmul(left[:, None, :], right[:, :, None])[:, 0, 0])


def _js_distance(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """``divergence.js_distance`` of each row's shares."""
    middle = (reference + current) / 2
    left = np.where(reference > 0, reference * np.log2(reference / middle), 0.0)
    right = np.where(current > 0, current * np.log2(current / middle), 0.0)
    divergence = np.maximum((left.sum(axis=1) + right.sum(axis=1)) / 2, 0.0)
    return np.asarray(np.sqrt(np.minimum(divergence, 1.0)))


def _ks_binned(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """``divergence.ks_binned``'s p-value of each row (1 where either has no rows)."""
    from scipy import special  # imported when first needed: the core imports fast

    reference, current = reference.astype(np.float64), current.astype(np.float64)
    total, rows = reference.sum(axis=1), current.sum(axis=1)
    gaps = (
        np.cumsum(reference, axis=1) / total[:, None] - np.cumsum(current, axis=1) / rows[:, None]
    )
    statistic = np.abs(gaps).max(axis=1)
    n, m = total.astype(np.int64), rows.astype(np.int64)
    root = np.sqrt(n * m / (n + m))
    p = special.kolmogorov((root + 0.12 + 0.11 / root) * statistic)
    return np.where((rows > 0) & (total > 0), p, 1.0)
