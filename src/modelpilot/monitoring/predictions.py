"""What a served version predicts: its predictions counted by class or on the reference's bins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.monitoring.divergence import js_distance
from modelpilot.monitoring.float32_bins import to_float32
from modelpilot.monitoring.prediction_edges import FLOAT32_EPS, FLOAT64_EPS, tolerant_bounds
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.quality import label_key
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.reference_outcomes import is_classifier

SEEN_CLASSES = 100
"""Classes a classifier that names none (a ``.py`` model answering text or whole numbers)
is counted by as they come, in the order first seen, beside those its reference names: its
counts had been over the classes the version names, and every prediction of such a model
was "(unknown)". Past them, the classes it answers are counted together as ``OTHER_CLASS``,
so that a model answering free text (an id a row) makes at most this many series."""

OTHER_CLASS = "(other)"
"""Predictions of a classifier that names no classes, of classes past ``SEEN_CLASSES``."""

UNKNOWN_CLASS = "(unknown)"
"""Predictions of a classifier that names its classes, of a class it does not name."""

WATCHED_COLUMNS = 32
"""Columns of a prediction of several values a row (a regressor of several targets) whose
mean and variance are watched, the first ones: each is two series on /metrics, so an output
of 1,000 values a row (an embedding) would have made 2,000 series a version. The summary
says how many columns were left out (``unwatched_columns``)."""


@dataclass(frozen=True, slots=True)
class ColumnSummary:
    """The mean and variance of one column of a prediction of several values a row."""

    output: str
    """The column as the metrics' ``output`` label names it: ``predict[1]`` (from 0)."""
    count: int
    """Its finite values in the window."""
    mean: float | None
    variance: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "count": self.count,
            "mean": self.mean,
            "variance": self.variance,
        }


@dataclass(frozen=True, slots=True)
class PredictionSummary:
    kind: str
    count: int
    classes: dict[str, int] | None
    histogram: dict[str, list[float]] | None
    mean: float | None
    """None for a prediction of several values a row: each column has its own (``columns``)."""
    variance: float | None
    drift: float | None
    """Jensen-Shannon distance to what the model predicted on the reference data."""
    columns: tuple[ColumnSummary, ...] | None = None
    """Each column's figures, where a row's prediction is several values; else None."""
    unwatched_columns: int = 0
    """Columns past ``WATCHED_COLUMNS``, left unwatched."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "count": self.count,
            "mean": self.mean,
            "variance": self.variance,
            "drift": self.drift,
        }
        if self.classes is not None:
            data["classes"] = self.classes
        if self.histogram is not None:
            data["histogram"] = self.histogram
        if self.columns is not None:
            data["columns"] = [c.to_dict() for c in self.columns]
            data["unwatched_columns"] = self.unwatched_columns
            data["note"] = self.note
        return data

    @property
    def note(self) -> str | None:
        """What a prediction of several values a row is summarised as, for a reader who
        would take a bare mean for the whole prediction's."""
        if self.columns is None:
            return None
        watched = len(self.columns)
        note = f"several values a row: mean and variance by column ({watched} columns"
        if self.unwatched_columns:
            note += f"; the first {watched} of {watched + self.unwatched_columns} are watched"
        return note + "), none for the prediction as a whole"


class SeenClasses:
    """The classes of a classifier that names none, each given a slot in the order first
    seen, up to ``capacity``; the classes past them share the last slot (``OTHER_CLASS``).

    Each process gives slots in the order it saw the classes, so counts of another process
    are moved to this one's slots by name (``aligned``) before they are added: merged by
    position, a worker that had seen "cat" first and one that had seen "dog" first counted
    each other's predictions under the wrong names. Slots are never taken back, so a class
    once counted apart stays apart and its counter never goes back."""

    def __init__(self, names: Sequence[str], capacity: int) -> None:
        self.names = list(names)
        self.codes = {name: i for i, name in enumerate(self.names)}
        self.capacity = capacity
        """Slots for classes; the counts have one more, the last, for those past them."""

    def code(self, name: str) -> int:
        """``name``'s slot, given it if it is new and there is room, else the last one's."""
        code = self.codes.get(name)
        if code is None:
            if len(self.names) >= self.capacity:
                return self.capacity
            code = len(self.names)
            self.names.append(name)
            self.codes[name] = code
        return code

    def aligned(self, counts: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """``counts`` of another process, slot by slot over its ``names`` (and its last slot,
        ``OTHER_CLASS``), in this one's slots: learning the names it had not seen."""
        if len(names) <= len(self.names) and all(
            mine == theirs for mine, theirs in zip(self.names, names, strict=False)
        ):
            return counts  # the same order (as far as the other went): the common case
        moved = np.zeros(self.capacity + 1, dtype=counts.dtype)
        for name, count in zip(names, counts[: len(names)], strict=True):
            moved[self.code(name)] += count
        moved[-1] += counts[-1]
        return moved

    def by_name(self, counts: np.ndarray) -> dict[str, int]:
        """``counts`` (in this one's slots) by class, the classes past the slots as one."""
        found = {name: int(counts[i]) for i, name in enumerate(self.names)}
        if counts[-1]:
            found[OTHER_CLASS] = int(counts[-1])
        return found


def _bounds(lower: np.ndarray, top: float) -> tuple[np.ndarray, float]:
    """Edges to bin by (see ``_slots``): ``lower`` in order (rounded to float32, an edge
    raised past the next one's float32 may lie above it), and the ``top`` one."""
    return np.sort(lower), top


def _slots(values: np.ndarray, lower: np.ndarray, top: float) -> np.ndarray:
    """Each value's slot (0 below the range, then the bins, then above it): the number of
    ``lower`` edges at or below it, and one more past ``top``, which closes the last bin, as
    in ``np.histogram`` and the features' binning. Missing values are the caller's."""
    slot = np.searchsorted(lower, values, side="right")
    slot += values > top
    return slot


def several_columns(spec_shape: Sequence[int]) -> tuple[int, int] | None:
    """(columns watched, columns left unwatched) of an output of ``spec_shape`` that gives
    several values a row ([-1, 3]: a regressor of three targets); None for one value a row
    ([-1] or [-1, 1]) or a shape of more dimensions (whose first value alone is watched).
    An output of unknown width ([-1, -1]) has its first ``WATCHED_COLUMNS`` watched, and
    is summarised by column once a second column held a value."""
    if len(spec_shape) != 2 or spec_shape[1] == 1:
        return None
    width = spec_shape[1]
    if width < 0:
        return WATCHED_COLUMNS, 0
    return min(width, WATCHED_COLUMNS), max(width - WATCHED_COLUMNS, 0)


class PredictionBins:
    """Where each prediction lands: its class, or a bin of the reference predictions' histogram
    (below its range, its bins, above it, or missing: NaN or infinite, as the reference
    predictions' profile counts them).

    A classifier that names its classes has a slot for each (and those its reference names
    besides), then one for the classes it does not name, the same in every process, so that
    counts add up by position: this runs for every round of requests. One that names none (a
    ``.py`` model answering text) has its classes given slots as they come (``seen``, up to
    ``SEEN_CLASSES`` of them past its reference's), in each process in the order it saw them:
    its states carry the names of their slots, and are merged by name (``aligned``).

    The mean and variance come from running sums of the numeric predictions (count, sum,
    sum of squares), which a window adds and takes away chunk by chunk. They are sums of the
    values less a fixed ``pivot``, the reference predictions' mean (else the first number
    counted): of the values themselves, the variance (mean of squares less the squared mean)
    of predictions near 1e8 that differ by 1 was lost to rounding, and read 0. Sums about
    another pivot (another worker's) are moved to this one before they are added
    (``rebased``).

    A prediction of several values a row (a regressor of three targets, ``[-1, 3]``) has
    these sums for each of its first ``WATCHED_COLUMNS`` columns, about a pivot of each
    column's own (``pivots``), ``[rows, sum, sum of squares]`` of its first column first:
    its mean and variance had been those of the first column alone, under the name of the
    whole prediction, and the other targets went unwatched. Its first column alone is binned
    (registration profiles no reference predictions of several values a row, so it has no
    bins to land in).

    A prediction that is a float32 (a float32 ONNX graph's, however the server casts it, and
    as the inference log gives it back) is binned by the edges rounded to float32, as a
    float32 model's inputs are (see ``float32_bins``): the reference predictions are those the
    original model made in float64 at registration, and a tree served in float32 put every
    prediction of a leaf value one bin low (171.90908813 below the edge 171.9090909, the
    leaf's own), its drift 0.42 where its original's read 0.08. Decided prediction by
    prediction: a graph hands rows with missing values to its float64 original, and in a
    batch of both, each prediction lands where its own kind does. Rounding the edges to
    float32 was not enough: a boosted model's graph sums its trees in float32, an ULP or
    a few either side of the float64 sum rounded, and a float64 graph answers an ULP off
    scikit-learn; so the edges near reference values are moved off them by a few ULPs of the
    precision (``prediction_edges``), float32's or float64's."""

    def __init__(self, version: ModelVersion, profile: ReferenceProfile | None) -> None:
        signature = version.signature
        main = signature.main_output
        assert main is not None, "a version with outputs has a main one"
        self.output = main.name
        self.classifier = is_classifier(signature)
        several = None if self.classifier else several_columns(main.shape)
        self.several = several is not None
        self.width, self.unwatched = several or (1, 0)
        self._width_known = not self.several or main.shape[1] > 0
        self._widest = 0
        """The most values a row this process was given (of an output of unknown width)."""
        self.sums_size = 3 * self.width
        reference = profile.predictions if profile else None
        self.reference: np.ndarray | None = None
        self.edges: np.ndarray | None = None
        self.pivots: list[float | None] = [None] * self.width
        """Each column's pivot; None until a number of the column was counted."""
        self.pivot = reference.mean if reference is not None else None
        self._bounds: tuple[np.ndarray, float] | None = None
        """The edges below the top one, in order, and the top one: what a prediction is
        binned by (see ``_slots``)."""
        self._bounds32: tuple[np.ndarray, float] | None = None
        """``_bounds`` for predictions that are float32, where they differ."""
        self.seen: SeenClasses | None = None
        """The classes as they came, of a classifier that names none (``SeenClasses``): its
        states carry their names (``MonitorState.class_names``). None where the version
        names its classes: counted by position, the same in every process."""
        self._named = 0
        """The classes named by the version or its reference: the first slots."""
        if self.classifier:
            names = [label_key(c) for c in signature.extra.get("classes", [])]
            named = bool(names)
            if reference is not None:
                names += [c for c in reference.categories if c not in names]
            self._named = len(names)
            # The last slot: a class the version does not name (``UNKNOWN_CLASS``), or, of
            # one that names none, one past the classes seen (``OTHER_CLASS``).
            self.size = len(names) + 1
            if not named:
                self.seen = SeenClasses(names, len(names) + SEEN_CLASSES)
                names = self.seen.names
                self.size += SEEN_CLASSES
            self.classes = names
            self._codes = self.seen.codes if self.seen else {n: i for i, n in enumerate(names)}
            if reference is not None:
                # A profile of more classes than it names pooled the rest (``other``): a
                # class outside the named ones may be one of them.
                self.reference = np.array(
                    [reference.categories.get(n, 0) for n in names] + [reference.other or 0],
                    dtype=np.float64,
                )
        else:
            self.classes = []
            self._codes = {}
            if reference is not None and len(reference.bin_edges) >= 2:
                self.edges = np.asarray(reference.bin_edges, dtype=np.float64)
                self.reference = np.concatenate(
                    [[0], reference.bin_counts, [0], [reference.missing]]
                ).astype(float)
                sketch = np.asarray(reference.sketch, dtype=float)
                self._bounds = _bounds(*tolerant_bounds(self.edges, sketch, FLOAT64_EPS))
                lower, top = tolerant_bounds(self.edges, sketch, FLOAT32_EPS)
                if (lower != self._bounds[0]).any() or top != self._bounds[1]:
                    self._bounds32 = _bounds(lower, top)
            # Below, the bins, above, missing.
            self.size = 0 if self.edges is None else self.edges.size + 2

    @property
    def pivot(self) -> float | None:
        """The first column's pivot: the predictions' own, where a row has one value."""
        return self.pivots[0]

    @pivot.setter
    def pivot(self, value: float | None) -> None:
        self.pivots[0] = value

    def count(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Counts per slot, and [rows, sum, sum of squares] of the numeric predictions (less
        ``pivot``, which the first of them sets if the reference did not), of each watched
        column where a row holds several."""
        values = np.asarray(outputs[self.output])
        sums = np.zeros(self.sums_size)
        block = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(-1, 1)
        if values.ndim > 1:
            values = block[:, 0]
        if not self._width_known:
            self._widest = max(self._widest, block.shape[1])
        if values.dtype.kind in "fiub":
            for column in range(min(block.shape[1], self.width)):
                sums[3 * column : 3 * column + 3] = self._sums(block[:, column], column)
        if self.classifier:
            # Few distinct labels in many rows: look each distinct one up once.
            try:
                distinct, inverse = np.unique(values, return_inverse=True)
            except TypeError:
                # Labels that do not sort together (str beside bytes or None, as a model may
                # answer): by their text, as they are looked up. Else the whole round, of
                # every request of the version, was dropped for one call's labels.
                distinct, inverse = np.unique(
                    np.array([label_key(v) for v in values.ravel()], dtype=object),
                    return_inverse=True,
                )
            if self.seen is None:
                unknown = self.size - 1
                keys = [self._codes.get(label_key(v), unknown) for v in distinct]
            else:
                keys = self._seen_codes([label_key(v) for v in distinct], inverse.ravel())
            codes = np.array(keys, dtype=np.int64)
            slots = codes[inverse.ravel()] if len(distinct) else np.zeros(0, dtype=np.int64)
            return np.bincount(slots, minlength=self.size).astype(np.int64), sums
        if self._bounds is None:
            return np.zeros(0, dtype=np.int64), sums
        numeric = values.astype(np.float64)
        if self._bounds32 is None:
            slot = _slots(numeric, *self._bounds)
        elif values.dtype == np.float32:
            slot = _slots(numeric, *self._bounds32)
        else:  # float64 numbers, float32 ones among them or not
            single = to_float32(numeric) == numeric
            if single.all():
                slot = _slots(numeric, *self._bounds32)
            else:
                slot = _slots(numeric, *self._bounds)
                if single.any():
                    slot[single] = _slots(numeric[single], *self._bounds32)
        slot[~np.isfinite(numeric)] = self.size - 1
        return np.bincount(slot, minlength=self.size).astype(np.int64), sums

    def _seen_codes(self, names: list[str], inverse: np.ndarray) -> list[int]:
        """The slots of ``names`` (the distinct labels, in order) of a classifier that names
        no classes; ``inverse``: each prediction's name. New classes take slots in the order
        they came, not in ``np.unique``'s: past the bound, the first ones keep theirs."""
        assert self.seen is not None
        codes = self.seen.codes
        if any(name not in codes for name in names):
            first = np.full(len(names), inverse.size)
            np.minimum.at(first, inverse, np.arange(inverse.size))
            for i in np.argsort(first, kind="stable"):
                self.seen.code(names[i])
        return [self.seen.code(name) for name in names]

    def _sums(self, values: np.ndarray, column: int) -> tuple[int, float, float]:
        """[rows, sum, sum of squares] of ``column``'s finite ``values`` about its pivot."""
        numeric = values.astype(np.float64)
        numeric = numeric[np.isfinite(numeric)]
        if numeric.size and self.pivots[column] is None:
            self.pivots[column] = float(numeric[0])
        shifted = numeric - (self.pivots[column] or 0.0)
        return numeric.size, float(shifted.sum()), float(np.square(shifted).sum())

    def rebased(self, sums: np.ndarray, pivots: Sequence[float]) -> np.ndarray:
        """[rows, sum, sum of squares] of each column about ``pivots`` moved to about this
        one's ``pivots``."""
        moved = np.array(sums, dtype=np.float64)
        for column, pivot in enumerate(pivots[: moved.size // 3]):
            rows, total, squares = (float(x) for x in moved[3 * column : 3 * column + 3])
            step = pivot - (self.pivots[column] or 0.0)
            if step:
                moved[3 * column : 3 * column + 3] = (
                    rows,
                    total + rows * step,
                    squares + 2 * step * total + rows * step**2,
                )
        return moved

    def _moments(self, sums: np.ndarray, column: int) -> tuple[int, float | None, float | None]:
        """Rows, mean and variance of ``column`` from its ``sums`` about its pivot."""
        rows, total, squares = (float(x) for x in sums[3 * column : 3 * column + 3])
        if not rows:
            return 0, None, None
        shift = total / rows
        mean = (self.pivots[column] or 0.0) + shift
        return int(rows), mean, max(squares / rows - shift**2, 0.0)

    def _columns(self, sums: np.ndarray) -> tuple[tuple[ColumnSummary, ...] | None, int]:
        """Each watched column's figures and how many columns go unwatched, where a row's
        prediction is several values; (None, 0) where it is one. Of an output of unknown
        width, the columns up to the last that held a value: by column once there are two."""
        if not self.several:
            return None, 0
        width, unwatched = self.width, self.unwatched
        if not self._width_known:
            held = [c for c in range(self.width) if sums[3 * c]]
            width = held[-1] + 1 if held else 0
            if width <= 1:
                return None, 0
            unwatched = max(self._widest - self.width, 0)
        columns = tuple(
            ColumnSummary(f"{self.output}[{c}]", *self._moments(sums, c)) for c in range(width)
        )
        return columns, unwatched

    def class_names(self) -> tuple[str, ...] | None:
        """The classes by slot, for a state that another process merges by name; None where
        the version names its classes (the same slots in every process)."""
        return tuple(self.seen.names) if self.seen is not None else None

    def aligned(self, counts: np.ndarray, names: Sequence[str] | None) -> np.ndarray:
        """Class ``counts`` of another process's state, whose slots are its ``names``
        (``class_names``), in this one's: by name, where the version names no classes."""
        if self.seen is None or names is None:
            return counts
        return self.seen.aligned(counts, names)

    def _as_reference(self, counts: np.ndarray) -> np.ndarray:
        """``counts`` over the reference predictions' slots: the classes it names, then the
        rest as one, as it pooled those it did not name (``other``)."""
        if self.seen is None:
            return counts
        named = self._named
        return np.append(counts[:named], counts[named:].sum())

    def summary(self, counts: np.ndarray, sums: np.ndarray) -> PredictionSummary:
        """The window's predictions, from their ``counts`` and their sums about ``pivot``."""
        rows, mean, variance = self._moments(sums, 0)
        drift = None
        if self.reference is not None and counts.sum() > 0:
            drift = js_distance(self.reference, self._as_reference(counts))
        if self.classifier:
            if self.seen is not None:
                classes = self.seen.by_name(counts)
            else:
                classes = {name: int(counts[i]) for i, name in enumerate(self.classes)}
                if counts[-1]:
                    classes[UNKNOWN_CLASS] = int(counts[-1])
            return PredictionSummary(
                "classification", int(counts.sum()), classes, None, mean, variance, drift
            )
        histogram = None
        if self.edges is not None:
            histogram = {"edges": self.edges.tolist(), "counts": counts[1:-2].tolist()}
            histogram["below"] = [float(counts[0])]
            histogram["above"] = [float(counts[-2])]
            # Not among the predictions counted (``count``): they are no number.
            histogram["missing"] = [float(counts[-1])]
        columns, unwatched = self._columns(sums)
        if columns is not None:
            # No one mean of several targets: a bare one was read as the whole prediction's.
            rows, mean, variance = max(c.count for c in columns), None, None
        return PredictionSummary(
            "regression", rows, None, histogram, mean, variance, drift, columns, unwatched
        )
