"""What a served version predicts: its predictions counted by class or on the reference's bins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.monitoring.divergence import js_distance
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.quality import label_key
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.registration import is_classifier


@dataclass(frozen=True, slots=True)
class PredictionSummary:
    kind: str
    count: int
    classes: dict[str, int] | None
    histogram: dict[str, list[float]] | None
    mean: float | None
    variance: float | None
    drift: float | None
    """Jensen-Shannon distance to what the model predicted on the reference data."""

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
        return data


class PredictionBins:
    """Where each prediction lands: its class, or a bin of the reference predictions' histogram
    (below its range, its bins, above it, or missing: NaN or infinite, as the reference
    predictions' profile counts them).

    The mean and variance come from running sums of the numeric predictions (count, sum,
    sum of squares), which a window adds and takes away chunk by chunk. They are sums of the
    values less a fixed ``pivot``, the reference predictions' mean (else the first number
    counted): of the values themselves, the variance (mean of squares less the squared mean)
    of predictions near 1e8 that differ by 1 was lost to rounding, and read 0. Sums about
    another pivot (another worker's) are moved to this one before they are added
    (``rebased``)."""

    def __init__(self, version: ModelVersion, profile: ReferenceProfile | None) -> None:
        signature = version.signature
        main = signature.main_output
        assert main is not None, "a version with outputs has a main one"
        self.output = main.name
        self.classifier = is_classifier(signature)
        reference = profile.predictions if profile else None
        self.reference: np.ndarray | None = None
        self.edges: np.ndarray | None = None
        self.pivot = reference.mean if reference is not None else None
        if self.classifier:
            names = [label_key(c) for c in signature.extra.get("classes", [])]
            if reference is not None:
                names += [c for c in reference.categories if c not in names]
            self.classes = names
            self._codes = {name: i for i, name in enumerate(names)}
            self.size = len(names) + 1  # the last slot: a class never seen before
            if reference is not None:
                self.reference = np.array(
                    [reference.categories.get(n, 0) for n in names] + [0], dtype=np.float64
                )
        else:
            self.classes = []
            self._codes = {}
            if reference is not None and len(reference.bin_edges) >= 2:
                self.edges = np.asarray(reference.bin_edges, dtype=np.float64)
                self.reference = np.concatenate(
                    [[0], reference.bin_counts, [0], [reference.missing]]
                ).astype(float)
            # Below, the bins, above, missing.
            self.size = 0 if self.edges is None else self.edges.size + 2

    def count(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Counts per slot, and [rows, sum, sum of squares] of the numeric predictions (less
        ``pivot``, which the first of them sets if the reference did not)."""
        values = np.asarray(outputs[self.output])
        sums = np.zeros(3)
        if values.ndim > 1:
            values = values.reshape(values.shape[0], -1)[:, 0]
        if values.dtype.kind in "fiub":
            numeric = values.astype(np.float64)
            numeric = numeric[np.isfinite(numeric)]
            if numeric.size and self.pivot is None:
                self.pivot = float(numeric[0])
            shifted = numeric - (self.pivot or 0.0)
            sums[:] = (numeric.size, shifted.sum(), np.square(shifted).sum())
        if self.classifier:
            # Few distinct labels in many rows: look each distinct one up once.
            distinct, inverse = np.unique(values, return_inverse=True)
            codes = np.array(
                [self._codes.get(label_key(v), len(self.classes)) for v in distinct],
                dtype=np.int64,
            )
            slots = codes[inverse.ravel()] if len(distinct) else np.zeros(0, dtype=np.int64)
            return np.bincount(slots, minlength=self.size).astype(np.int64), sums
        if self.edges is None:
            return np.zeros(0, dtype=np.int64), sums
        numeric = values.astype(np.float64)
        slot = np.searchsorted(self.edges, numeric, side="right")
        slot[numeric == self.edges[-1]] = self.edges.size - 1
        slot[~np.isfinite(numeric)] = self.edges.size + 1
        return np.bincount(slot, minlength=self.size).astype(np.int64), sums

    def rebased(self, sums: np.ndarray, pivot: float) -> np.ndarray:
        """[rows, sum, sum of squares] about ``pivot`` moved to about this ``pivot``."""
        rows, total, squares = (float(x) for x in sums)
        step = pivot - (self.pivot or 0.0)
        if not step:
            return sums
        return np.array([rows, total + rows * step, squares + 2 * step * total + rows * step**2])

    def summary(self, counts: np.ndarray, sums: np.ndarray) -> PredictionSummary:
        """The window's predictions, from their ``counts`` and their sums about ``pivot``."""
        rows, total, squares = (float(x) for x in sums)
        shift = total / rows if rows else 0.0
        mean = (self.pivot or 0.0) + shift if rows else None
        variance = max(squares / rows - shift**2, 0.0) if rows else None
        drift = None
        if self.reference is not None and counts.sum() > 0:
            drift = js_distance(self.reference, counts)
        if self.classifier:
            classes = {name: int(counts[i]) for i, name in enumerate(self.classes)}
            if counts[-1]:
                classes["(unknown)"] = int(counts[-1])
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
        return PredictionSummary("regression", int(rows), None, histogram, mean, variance, drift)
