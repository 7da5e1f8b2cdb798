"""Turning rows into per-feature bin counts on the reference's bins, and counts into drift.

A ``ProfileBinning`` is built once per served version from its reference profile. It lays every
feature's bins end to end in one flat vector so that a batch of rows becomes one ``bincount``:

- numeric: ``[below reference min, reference bins..., above reference max, missing]``, where
  missing is NaN and +/-inf alike, as in the reference profile (``FeatureProfile.numeric``);
- categorical: ``[reference categories..., unseen (or other), missing]``, then the values
  outside the named categories again, by hash group (see ``category_bins``).

Besides counts it keeps, per numeric feature, the sum of the values in each of its bins but the
missing one, so that Wasserstein can place each bin's mass where it really lies (see
``ProfileBinning.count``).

A float32 model's inputs reach the monitor after the cast to float32 (0.7 as 0.69999999), and
its reference is float64: a feature whose values in a batch are all float32 is binned by the
edges rounded to float32 (see ``float32_bins``), and tested by KS against the reference's
values rounded so (see ``ProfileBinning._ks_sample``); each feature by its own values, as a
file's columns may be stored each as it was. A feature whose reference was stored as float32
(``FeatureProfile.float32``) has a window's values rounded to float32 first, whatever their
type, so that float64 copies of the reference's numbers bin where they do.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from modelpilot.monitoring.category_bins import (
    CategoricalBins,
    categorical_bins,
    category_counts,
)
from modelpilot.monitoring.drift import (
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    failed,
    judge_categorical,
    judge_numeric,
    summarize,
)
from modelpilot.monitoring.float32_bins import (
    float32_edges,
    float32_rows,
    float32_valued,
    to_float32,
)
from modelpilot.monitoring.numeric_bins import (
    NumericBins,
    float_column,
    numeric_bins,
    sample_column,
    to_float,
)
from modelpilot.monitoring.numeric_stack import NumericStack
from modelpilot.monitoring.window_digest import window_digest
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.repeated_errors import RepeatedErrors, first_line

logger = logging.getLogger(__name__)

POOLED_WHOLE = (
    "its profile pools every category in one bin, so only its missing share is watched: "
    "it was made before profiles named up to 1,000 categories (and chose them apart from "
    "counting them); register the version again to watch its categories one by one"
)
"""Said of a feature whose old profile named more categories than it could keep apart (many
about equally common ones, all pooled with the tail: ``category_bins.trusted_count``): its
verdict reads "no drift" whatever its categories do."""

CHUNK_ROWS = 8192
"""Rows binned in one go, which bounds the scratch arrays of a large offline comparison."""
MIXED_EDGES_KEPT = 16
"""How many mixes of float32 and float64 features a binning keeps the edges of."""


class ProfileBinning:
    """The reference profile's bins, and the arithmetic between them and a window's counts."""

    def __init__(self, profile: ReferenceProfile, sample: np.ndarray | None = None) -> None:
        """``sample``: reference rows (the profile's columns) that the KS test compares with,
        in place of the profile's sketch of each feature: all of them, where the reference
        data is at hand."""
        self.profile = profile
        self.names = profile.feature_names
        self._errors = RepeatedErrors(logger)
        """Features whose tests failed, logged once a minute each (see ``report``)."""
        whole = sample is not None
        if sample is None and profile.sample:
            sample = profile.sample_array()
        self._numeric: list[NumericBins] = []
        self._categorical: list[CategoricalBins] = []
        self._rounded_samples: dict[int, np.ndarray] = {}
        """Each numeric feature's KS sample rounded to float32, made when first needed."""
        offset = 0
        for index, feature in enumerate(profile.features):
            if feature.kind == "numeric":
                column = sample_column(sample, index)
                numeric = numeric_bins(index, offset, feature, column, whole)
                self._numeric.append(numeric)
                offset += numeric.width
            else:
                categorical = categorical_bins(index, offset, feature)
                self._categorical.append(categorical)
                offset += categorical.width
        self.size = offset
        """Length of the flat count vector."""
        inner = [n.edges.size - 1 for n in self._numeric]
        self.sums_size = 2 * len(self._numeric) + sum(inner)
        """Length of the flat vector of sums: below and above the range per numeric feature,
        then each numeric feature's reference bins."""
        # Where each numeric feature's reference bins sit in the flat counts, and in the sums.
        self._inner_bins = np.concatenate(
            [
                np.arange(n.offset + 1, n.offset + 1 + k)
                for n, k in zip(self._numeric, inner, strict=True)
            ]
            or [np.zeros(0, dtype=np.int64)]
        )
        self._inner_sums = 2 * len(self._numeric) + np.cumsum([0, *inner])
        self._stack = NumericStack(self._numeric, self.names, self._inner_sums)
        """The numeric features, judged together (see ``_judge``)."""
        # Each feature's KS sample a row of the stack's (the same values, sorted): not kept twice.
        self._numeric = [
            replace(spec, sample=row)
            for spec, row in zip(self._numeric, self._stack.sketches.rows, strict=True)
        ]
        # All numeric features binned at once (see _bins): their edges side by side, padded
        # with NaN, which no value is at or above; and so the edges that float32 values are
        # binned by, worked out here once.
        widest = max((n.edges.size - 1 for n in self._numeric), default=0)
        lower = np.full((2, len(self._numeric), widest), np.nan)
        top = np.zeros((2, len(self._numeric)))
        for position, spec in enumerate(self._numeric):
            bins = spec.edges.size - 1
            lower[0, position, :bins], top[0, position] = spec.edges[:-1], spec.edges[-1]
            lower[1, position, :bins], top[1, position] = float32_edges(spec.edges, spec.sample)
        self._lower = np.ascontiguousarray(lower[0].T)[:, :, None]
        """Every edge but the top one of each numeric feature, padded with NaN: entry ``i``
        holds each feature's ``i``-th edge, as a column (it is compared with rows of values)."""
        self._top = top[0][:, None]
        self._lower32 = np.ascontiguousarray(lower[1].T)[:, :, None]
        """``_lower`` for values that are all float32."""
        self._top32 = top[1][:, None]
        self._inner = np.array([n.edges.size - 1 for n in self._numeric], dtype=np.int64)
        self._offsets = np.array([n.offset for n in self._numeric], dtype=np.int64)
        self._columns = np.array([n.index for n in self._numeric], dtype=np.intp)
        self._all_numeric = self._columns.tolist() == list(range(len(self.names)))
        self._float32 = np.array([n.float32 for n in self._numeric], dtype=bool)
        """The numeric features whose reference was stored as float32, rounded to it."""
        self._rounded = np.flatnonzero(self._float32)
        same = (lower[0] == lower[1]) | np.isnan(lower[0])
        self._rounding_matters = np.flatnonzero(~same.all(axis=1) | (top[0] != top[1]))
        """The numeric features whose edges for float32 values differ from their own: the
        others bin float32 values alike by either, and need not be looked at."""
        self._float32_watched = self._float32[self._rounding_matters]
        self._mixed_edges: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        """The edges of batches some of whose features are float32 and some not, by which
        (see ``_edges_for``): a served model's batches come alike, round after round."""
        self._last: tuple[bytes, DriftThresholds, DriftReport] | None = None
        """The last window judged (its ``window_digest``), at which thresholds, and its
        verdict, given again while neither changes (see ``report``)."""

    @property
    def numeric(self) -> list[NumericBins]:
        """The numeric features' bins, in the order they are laid out."""
        return self._numeric

    @property
    def categorical(self) -> list[CategoricalBins]:
        """The categorical features' bins, in the order they are laid out."""
        return self._categorical

    def count(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat bin counts and sums of a 2-D batch whose columns are the features.

        The sums are of the values in each numeric bin: first those below and above the
        reference range (two per numeric feature), then those in each reference bin. Divided
        by the counts they give the mean of each bin, where Wasserstein places its mass: at
        the bin's midpoint instead, a clean shift of half a standard deviation read 0.59 to
        0.68 where scipy on the values gave 0.50 to 0.52, as the outer deciles of a bell
        curve lie far nearer its middle than the midpoints of their wide bins."""
        if rows.ndim != 2 or rows.shape[1] != len(self.names):
            raise ValueError(f"expected rows of {len(self.names)} features, got {rows.shape}")
        counts = np.zeros(self.size, dtype=np.int64)
        sums = np.zeros(self.sums_size, dtype=np.float64)
        if self._numeric:
            if rows.dtype.kind in "fiub":
                values = rows if self._all_numeric else rows[:, self._columns]
                values = np.asarray(values, dtype=np.float64)
            else:  # rows of numbers beside text: the numbers' columns hold floats
                try:
                    values = rows[:, self._columns].astype(np.float64)
                except (TypeError, ValueError):
                    values = to_float(rows[:, self._columns])
            for start in range(0, values.shape[0], CHUNK_ROWS):
                # Feature by feature (one contiguous row each), as the comparisons run fastest.
                by_feature = np.ascontiguousarray(values[start : start + CHUNK_ROWS].T)
                if rows.dtype == np.float32:
                    lower, top = self._lower32, self._top32
                else:
                    if self._rounded.size:  # so that a float64 0.1 is a float32 reference's
                        if np.may_share_memory(by_feature, values):  # the caller's rows
                            by_feature = by_feature.copy()
                        by_feature[self._rounded] = to_float32(by_feature[self._rounded])
                    lower, top = self._edges_for(by_feature)
                bins = self._bins(by_feature, lower, top).ravel()
                counts += np.bincount(bins, minlength=self.size)
                # Each bin's sum of values (the missing bin's, NaN, is not kept).
                totals = np.bincount(bins, weights=by_feature.ravel(), minlength=self.size)
                sums[0 : 2 * self._offsets.size : 2] += totals[self._offsets]
                sums[1 : 2 * self._offsets.size : 2] += totals[self._offsets + self._inner + 1]
                sums[2 * self._offsets.size :] += totals[self._inner_bins]
        for category in self._categorical:
            feature = counts[category.offset : category.offset + category.width]
            feature += category_counts(rows[:, category.index], category)
        return counts, sums

    def _edges_for(self, by_feature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lower and top edges (as ``_lower`` and ``_top``) that the numeric features of
        float64 values ``by_feature`` are binned by: those for float32 values where a
        feature's values all are, each feature by its own (a file's columns come each as it
        was stored), and where its reference was float32 (its values rounded so)."""
        watched = self._rounding_matters
        matters = float32_rows(by_feature, watched) | self._float32_watched
        found = np.count_nonzero(matters)  # a tenth of .all()'s and .any()'s time, each
        if found == matters.size:
            return self._lower32, self._top32
        if not found:
            return self._lower, self._top
        key = matters.tobytes()
        if key not in self._mixed_edges:
            if len(self._mixed_edges) >= MIXED_EDGES_KEPT:
                self._mixed_edges.clear()
            single = np.zeros(self._float32.size, dtype=bool)
            single[watched] = matters
            where = single[:, None]
            self._mixed_edges[key] = (
                np.where(where[None], self._lower32, self._lower),
                np.where(where, self._top32, self._top),
            )
        return self._mixed_edges[key]

    def _bins(self, by_feature: np.ndarray, lower: np.ndarray, top: np.ndarray) -> np.ndarray:
        """Each numeric value's bin in the flat vector; ``by_feature`` holds one numeric
        feature per row (in the order of ``_numeric``), binned by ``lower`` and ``top``
        (see ``_edges_for``)."""
        # A value's bin is the number of edges at or below it (searchsorted, side="right"),
        # except that the top edge belongs to the last bin, as in np.histogram: it counts only
        # when the value is past it. Taken edge position by edge position: a dozen NumPy calls
        # on the whole batch rather than a dozen per feature. Counted in bytes where the edges
        # allow: the comparisons' booleans then add in as bytes of the same type, which NumPy
        # does without converting them through a buffer.
        small = lower.shape[0] < 255
        slot = np.zeros(by_feature.shape, dtype=np.uint8 if small else np.int64)
        passed = np.empty(by_feature.shape, dtype=bool)
        step = passed.view(np.uint8) if small else passed
        for edge in lower:
            np.less_equal(edge, by_feature, out=passed)
            slot += step
        np.less(top, by_feature, out=passed)
        slot += step
        bins = slot.astype(np.int64)
        # Infinities are missing, as the reference profile counts them (``FeatureProfile``):
        # binned past the range here, the reference's own rows drifted against it (5% of them
        # +inf, shuffled: PSI 0.62), and one of them made Wasserstein infinite.
        missing = ~np.isfinite(by_feature)
        if missing.any():
            bins[missing] = np.broadcast_to(self._inner[:, None] + 2, by_feature.shape)[missing]
        bins += self._offsets[:, None]
        return bins

    def report(
        self,
        counts: np.ndarray,
        sums: np.ndarray,
        recent: np.ndarray | None,
        thresholds: DriftThresholds,
    ) -> DriftReport:
        """The drift of a window with these counts; ``recent`` holds its rows when few.

        A feature whose tests raise has no verdict, its reason saying why (``drift.failed``),
        and the error is logged, once a minute while it lasts: the other features are still
        judged. (One feature's ZeroDivisionError once failed the whole report, every
        evaluation, and the served model's report froze at the last one that worked.)

        The verdict of a window the same as the last one judged (the same counts, sums and
        rows, at the same thresholds) is the last one, not judged again: an idle server
        judged its unchanged windows every round (see ``window_digest``). Rows that arrive
        or age out change the window; a verdict with a failed feature is judged again, so
        that its error is logged while it lasts."""
        thresholds = replace(thresholds, features=len(self.names))
        try:
            digest = window_digest(counts, sums, recent, self._columns)
        except (TypeError, ValueError, IndexError):
            digest = None  # rows of another shape: judged (each feature's tests say what)
        last = self._last
        if digest is not None and last is not None and last[:2] == (digest, thresholds):
            return last[2]
        report = self._judge(counts, sums, recent, thresholds)
        failed = any(f.error is not None for f in report.features)
        self._last = None if failed or digest is None else (digest, thresholds, report)
        return report

    def _judge(
        self,
        counts: np.ndarray,
        sums: np.ndarray,
        recent: np.ndarray | None,
        thresholds: DriftThresholds,
    ) -> DriftReport:
        results = self._judge_numbers(counts, sums, recent, thresholds)
        rows = max((f.rows for f in results), default=0)
        for category in self._categorical:
            feature = counts[category.offset : category.offset + category.width]
            current = feature[: category.bins]  # then the values outside them, by group
            rows = max(rows, int(current.sum()))
            try:
                judged = self._judge_categorical(category, feature, thresholds)
            except Exception as exc:
                kind, reference = "categorical", category.reference
                judged = self._failed(category.index, kind, reference, current, exc)
            results.append(judged)
        # In the profile's order (a feature's name looked up in a list of 2,000, for each of
        # them, was a tenth of the time of judging them all).
        order = [spec.index for spec in self._numeric] + [c.index for c in self._categorical]
        ranked = [results[i] for i in np.argsort(order, kind="stable").tolist()]
        return summarize(rows, ranked, thresholds)

    def _judge_numbers(
        self,
        counts: np.ndarray,
        sums: np.ndarray,
        recent: np.ndarray | None,
        thresholds: DriftThresholds,
    ) -> list[FeatureDrift]:
        """The numeric features' verdicts, in the order of ``_numeric``: all together
        (``NumericStack``), else, where that raises, feature by feature, so that a feature
        whose tests fail has no verdict and the others keep theirs."""
        try:
            return self._stack.judge(counts, sums, recent, thresholds)
        except Exception as exc:
            error = exc
        results: list[FeatureDrift] = []
        for position, spec in enumerate(self._numeric):
            current = counts[spec.offset : spec.offset + spec.width]
            try:
                judged = self._judge_numeric(position, spec, current, sums, recent, thresholds)
            except Exception as exc:
                judged = self._failed(spec.index, "numeric", spec.reference, current, exc)
            results.append(judged)
        if not any(f.error is not None for f in results):  # else those features' errors say it
            self._errors.error(
                "numbers together",
                "judging the numeric features together failed, so each was judged alone: %s",
                first_line(error),
                exc_info=error,
            )
        return results

    def _judge_categorical(
        self, category: CategoricalBins, feature: np.ndarray, thresholds: DriftThresholds
    ) -> FeatureDrift:
        current = feature[: category.bins]
        # With a tail in the reference, a value outside its named categories may be one of
        # the tail's: how many are new is unknown.
        unseen = None if category.tail else int(current[category.other])
        judged = judge_categorical(
            self.names[category.index],
            category.reference,
            current,
            unseen,
            thresholds,
            category.fold_rare,
            category.value_groups(feature),
        )
        if category.tail and not category.codes:
            judged = replace(judged, reason=f"{judged.reason}; {POOLED_WHOLE}")
        rows = int(current.sum())
        if category.sketch is not None and rows:  # the tail's sketch tells the new values
            judged = replace(judged, unseen_share=int(feature[-1]) / rows)
        return judged

    def _failed(
        self,
        index: int,
        kind: str,
        reference: np.ndarray,
        current: np.ndarray,
        error: Exception,
    ) -> FeatureDrift:
        """Feature ``index`` without a verdict, as its tests raised ``error``, which is logged
        (with its traceback the first time; see ``RepeatedErrors``)."""
        name = self.names[index]
        self._errors.error(
            name,
            "the drift tests of feature %r failed, so it has no verdict: %s",
            name,
            first_line(error),
            exc_info=True,
        )
        return failed(name, kind, reference, current, error)

    def _judge_numeric(
        self,
        position: int,
        spec: NumericBins,
        current: np.ndarray,
        sums: np.ndarray,
        recent: np.ndarray | None,
        thresholds: DriftThresholds,
    ) -> FeatureDrift:
        edges = spec.edges
        located = current[: edges.size + 1]
        total = np.concatenate(
            [
                sums[2 * position : 2 * position + 1],
                sums[self._inner_sums[position] : self._inner_sums[position + 1]],
                sums[2 * position + 1 : 2 * position + 2],
            ]
        )
        # Each bin's mean where the window has values there, kept within the bin: the window
        # adds and subtracts the sums of chunks as they come and go, which leaves rounding
        # residue (from values of 1e200, say) in a bin that was emptied and filled again.
        lower = np.concatenate([[-np.inf], edges])
        upper = np.concatenate([edges, [np.inf]])
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.clip(total / located, lower, upper)
        points = np.where(located > 0, means, spec.points)
        sample = None
        if recent is not None and int(current.sum()) < thresholds.large_sample_rows:
            column = float_column(recent, spec.index)
            sample = column[np.isfinite(column)]  # the values present: see ``_bins``
            if spec.float32:  # as they were binned (see ``count``)
                sample = to_float32(sample)
        return judge_numeric(
            self.names[spec.index],
            spec.reference,
            current,
            spec.points,
            points,
            spec.scale,
            self._ks_sample(position, spec, sample),
            sample,
            thresholds,
            spec.sample_rows,
        )

    def _ks_sample(self, position: int, spec: NumericBins, window: np.ndarray | None) -> np.ndarray:
        """The reference values that the KS test compares ``window``'s with (``spec.sample``):
        rounded to float32 when the window's all are float32, as a float32 model's inputs are.

        Unrounded, no logged value of such a model equals a reference value it was sent (0.7
        is 0.69999999 in float32): a model sent its own reference rows, of a feature of the
        values 0.1, 0.2, 0.3 and 0.7, read KS p = 2e-11. A window of float64 values that
        happen to be float32 (whole numbers) loses nothing by it: the rounding moves a
        reference value by less than half a float32 step, past no such value."""
        if window is None or window.size == 0 or not float32_valued(window):
            return spec.sample
        if position not in self._rounded_samples:
            self._rounded_samples[position] = to_float32(spec.sample)
        return self._rounded_samples[position]
