"""Reference profiles: what the training data looked like, kept with a version for drift."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelpilot.registry.categorical_profile import TOP_CATEGORIES, count_categories
from modelpilot.registry.category_keys import (
    CATEGORY_GROUPS,
    category_group,
    holds_booleans,
    is_missing,
)
from modelpilot.registry.category_sketch import TailSketch
from modelpilot.registry.numeric_profile import (
    HISTOGRAM_BINS,
    QUANTILE_LEVELS,
    SKETCH_LEVELS,
    bin_edges,
    quantile_sketch,
)
from modelpilot.registry.profile_columns import (
    float32_dtype,
    is_numeric_feature,
    refuse_unprofiled,
)
from modelpilot.registry.profile_formats import stored_categories, stored_sketch
from modelpilot.registry.quality import label_key

__all__ = [
    "CATEGORY_GROUPS",
    "HISTOGRAM_BINS",
    "QUANTILE_LEVELS",
    "SKETCH_LEVELS",
    "TOP_CATEGORIES",
    "FeatureProfile",
    "ReferenceProfile",
    "bin_edges",
    "category_group",
    "is_numeric_feature",
    "outcome_profile",
    "quantile_sketch",
    "refuse_unprofiled",
]
"""The numeric, categorical and column rules live in their own modules; their names that
callers of this one use are kept here."""


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class FeatureProfile:
    """One column of the reference data.

    Numeric columns keep quantiles and a histogram whose bins hold about a tenth of the
    reference each, but where single values hold that much: those have bins of their own
    (see ``bin_edges``), and a sketch of all their values for the KS test (see
    ``quantile_sketch``); categorical columns keep their category counts.
    """

    name: str
    kind: str
    """``numeric`` or ``categorical``."""
    count: int
    missing: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantile_levels: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = ()
    bin_edges: tuple[float, ...] = ()
    bin_counts: tuple[int, ...] = ()
    bin_means: tuple[float | None, ...] = ()
    """Each bin's mean (None for an empty bin), where its mass lies for Wasserstein; profiles
    made before it have none, and their sample's means stand in."""
    sketch: tuple[float, ...] = ()
    """The whole reference's finite values in order, or where it has more than
    ``SKETCH_LEVELS`` of them, their ``quantile_sketch``: what the KS test reads the
    reference's distribution function from, the reference counted as all its finite values
    (``count - missing``). Profiles made before it have none; their sample of 256 rows
    stands in, against which a feature drawn as the reference was could be flagged in 6% of
    windows for that sample's luck (see ``quantile_sketch``)."""
    categories: dict[str, int] = field(default_factory=dict)
    """The named categories' rows, by ``category_key``: every category of the reference, or
    where it had more than ``TOP_CATEGORIES``, the most frequent ones."""
    other: int | None = None
    """The rows of the reference's rarer categories, pooled (see ``categorical``); None where
    the profile names every category. Kept apart from ``categories``: profiles stored by
    earlier releases held it among them as the category "__other__", and a real value of that
    name (pipelines bucket rare categories under it) was taken for a pooled tail, which
    turned the feature's drift off (see ``profile_formats``)."""
    other_groups: tuple[int, ...] = ()
    """The pooled rest's (``other``) rows in each ``category_group``, counted with it; empty
    where nothing was pooled, and in profiles made before it."""
    boolean: bool | None = None
    """A feature of truth values (see ``holds_booleans``), whose categories are ``TRUE`` and
    ``FALSE``, and which the monitor counts so however a value is written (1.0, "true");
    False for any other, text above all, whose categories are its exact strings. None in a
    profile made before it, whose categories say (see ``is_boolean``)."""
    held_out: bool = False
    """The categories were chosen on one half of the reference rows and counted, with
    ``count`` and ``missing``, on the other (see ``categorical``): the counts are an honest
    sample of the named categories and of the pooled rest. Profiles made before it chose and
    counted on the same rows; the monitor then guards against their luck near the cut
    (``monitoring.category_bins.trusted_count``)."""
    tail_sketch: TailSketch | None = None
    """The pooled tail's values (where there is one), and how many values the reference
    held once and twice: a value outside the named categories and outside it is one the
    reference never held (see ``count_categories``). None in a profile made before it,
    whose values outside the named ones all count with the tail."""
    float32: bool = False
    """The reference column was stored as float32 (a float32 Parquet column, a float32
    array): its values, edges and sketch are float32 numbers (0.1 as 0.10000000149), and the
    monitor rounds a window's values of the feature to float32 before it bins them, or the
    same numbers from a float64 file fell below the edges (0.1 below the reference's 0.1:
    PSI 6.0). Profiles made before it have none, and bin a window's values as they come."""

    @classmethod
    def numeric(cls, name: str, values: np.ndarray) -> FeatureProfile:
        """Quantiles, bins and a sketch of the finite values; NaN and +/-inf count as
        ``missing``, by the rule the monitor bins a window's values by
        (``monitoring.binning``), so that the reference's own rows read no drift. Values of
        a float32 array make a ``float32`` profile."""
        float32 = values.dtype == np.float32
        values = values.astype(np.float64, copy=False)
        finite = values[np.isfinite(values)]
        missing = int(values.size - finite.size)
        if finite.size == 0:
            return cls(name, "numeric", int(values.size), missing, float32=float32)
        quantiles = np.quantile(finite, QUANTILE_LEVELS)
        edges = bin_edges(finite)
        counts, _ = np.histogram(finite, bins=edges)
        sums, _ = np.histogram(finite, bins=edges, weights=finite)
        means = tuple(
            _finite(float(total / count)) if count else None
            for total, count in zip(sums, counts, strict=True)
        )
        return cls(
            name,
            "numeric",
            int(values.size),
            missing,
            mean=_finite(float(finite.mean())),
            std=_finite(float(finite.std())),
            min=_finite(float(finite.min())),
            max=_finite(float(finite.max())),
            quantile_levels=QUANTILE_LEVELS,
            quantiles=tuple(float(q) for q in quantiles),
            bin_edges=tuple(float(e) for e in edges),
            bin_counts=tuple(int(c) for c in counts),
            bin_means=means,
            sketch=tuple(float(v) for v in quantile_sketch(finite)),
            float32=float32,
        )

    @classmethod
    def categorical(cls, name: str, values: pd.Series) -> FeatureProfile:
        """Category counts, each value counted under its ``category_key``, as the monitor
        counts it: a column of booleans as ``TRUE`` and ``FALSE`` (a ``boolean`` feature),
        text as its exact strings; the categories named, pooled and sketched as
        ``count_categories`` says."""
        counts = count_categories(values)
        return cls(
            name,
            "categorical",
            counts.rows,
            counts.missing,
            categories=counts.categories,
            other=counts.other,
            other_groups=counts.other_groups,
            held_out=counts.held_out,
            boolean=holds_booleans(values),
            tail_sketch=counts.tail_sketch,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
        }
        if self.kind == "numeric":
            data.update(
                mean=self.mean,
                std=self.std,
                min=self.min,
                max=self.max,
                quantile_levels=list(self.quantile_levels),
                quantiles=list(self.quantiles),
                bin_edges=list(self.bin_edges),
                bin_counts=list(self.bin_counts),
                bin_means=list(self.bin_means),
                sketch=list(self.sketch),
                float32=self.float32,
            )
        else:
            # "other" always, null where nothing was pooled: it marks the profile as one whose
            # categories are all real values (see profile_formats.stored_categories).
            data["categories"] = dict(self.categories)
            data["other"] = self.other
            if self.other_groups:
                data["other_groups"] = list(self.other_groups)
            data["held_out"] = self.held_out
            data["boolean"] = self.boolean
            if self.tail_sketch is not None:
                data["tail_sketch"] = self.tail_sketch.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureProfile:
        """A profile as ``to_dict`` stored it, or as earlier releases did (see
        ``profile_formats``)."""
        categories, other = stored_categories(data)
        boolean = data.get("boolean")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            count=int(data["count"]),
            missing=int(data["missing"]),
            mean=data.get("mean"),
            std=data.get("std"),
            min=data.get("min"),
            max=data.get("max"),
            quantile_levels=tuple(data.get("quantile_levels", ())),
            quantiles=tuple(data.get("quantiles", ())),
            bin_edges=tuple(data.get("bin_edges", ())),
            bin_counts=tuple(data.get("bin_counts", ())),
            bin_means=tuple(data.get("bin_means", ())),
            sketch=tuple(data.get("sketch", ())),
            categories=categories,
            other=other,
            other_groups=tuple(int(n) for n in data.get("other_groups", ())),
            boolean=None if boolean is None else bool(boolean),
            held_out=bool(data.get("held_out", False)),
            float32=bool(data.get("float32", False)),
            tail_sketch=stored_sketch(data),
        )


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """Per-feature profiles of the training data, and a small sample of its rows."""

    features: tuple[FeatureProfile, ...]
    n_rows: int
    sample: list[list[Any]]
    """Up to ``sample_rows`` rows, for parity checks and synthetic traffic."""
    predictions: FeatureProfile | None = None
    """What the model predicted on the reference rows (categorical for classifiers)."""
    target: FeatureProfile | None = None
    """The reference labels, when registration was given the target column."""

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureProfile:
        for profile in self.features:
            if profile.name == name:
                return profile
        raise KeyError(f"no feature {name!r} in the reference profile")

    def sample_array(self) -> np.ndarray:
        """The sample as a float array when every feature is numeric, else an object array."""
        if all(f.kind == "numeric" for f in self.features):
            # Row by row: NumPy reading the whole sample's values (half a million of a wide
            # model's) in one call would hold the interpreter for as long as they all take.
            rows = [
                np.array([np.nan if v is None else v for v in row], dtype=np.float64)
                for row in self.sample
            ]
            return np.array(rows, dtype=np.float64).reshape(len(self.sample), len(self.features))
        return np.array(self.sample, dtype=object)

    @classmethod
    def from_data(
        cls,
        data: pd.DataFrame | np.ndarray,
        feature_names: Sequence[str] | None = None,
        sample_rows: int = 256,
    ) -> ReferenceProfile:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(np.asarray(data))
        if feature_names is not None:
            if len(feature_names) != frame.shape[1]:
                raise ValueError(f"{len(feature_names)} feature names for {frame.shape[1]} columns")
            frame = frame.set_axis([str(n) for n in feature_names], axis=1)
        else:
            frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
        refuse_unprofiled(frame)
        features = []
        for name in frame.columns:
            column = frame[name]
            if is_numeric_feature(column):
                # Int64's <NA> as NaN; a float32 column kept so (see FeatureProfile.float32).
                stored = np.float32 if float32_dtype(column) else np.float64
                numbers = column.to_numpy(dtype=stored, na_value=np.nan)
                features.append(FeatureProfile.numeric(name, numbers))
            else:
                features.append(FeatureProfile.categorical(name, column))
        rng = np.random.default_rng(0)
        take = min(sample_rows, len(frame))
        rows: np.ndarray = np.sort(rng.choice(len(frame), size=take, replace=False))
        sample = [[_json_value(v) for v in row] for row in frame.iloc[rows].itertuples(index=False)]
        return cls(tuple(features), len(frame), sample)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "features": [f.to_dict() for f in self.features],
            "sample": self.sample,
            "predictions": self.predictions.to_dict() if self.predictions else None,
            "target": self.target.to_dict() if self.target else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        return cls(
            features=tuple(FeatureProfile.from_dict(f) for f in data["features"]),
            n_rows=int(data["n_rows"]),
            sample=[list(row) for row in data.get("sample", [])],
            predictions=_optional_profile(data.get("predictions")),
            target=_optional_profile(data.get("target")),
        )

    def with_outcomes(
        self, predictions: FeatureProfile | None, target: FeatureProfile | None
    ) -> ReferenceProfile:
        return ReferenceProfile(self.features, self.n_rows, self.sample, predictions, target)


def outcome_profile(name: str, values: np.ndarray | pd.Series, categorical: bool) -> FeatureProfile:
    """A profile of model outputs or labels: category counts for classes, else a histogram."""
    if categorical:
        labels = [label_key(v) for v in np.asarray(values).ravel()]
        return FeatureProfile.categorical(name, pd.Series(labels, dtype=object))
    return FeatureProfile.numeric(name, np.asarray(values, dtype=np.float64).ravel())


def _optional_profile(data: dict[str, Any] | None) -> FeatureProfile | None:
    return FeatureProfile.from_dict(data) if data else None


def _json_value(value: Any) -> Any:
    """A cell as JSON can hold it: missing values (pandas' NA and NaT among them), NaN and
    infinities become null, NumPy scalars plain."""
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
