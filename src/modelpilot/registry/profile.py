"""Reference profiles: what the training data looked like, kept with a version for drift."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelpilot.errors import InvalidInput
from modelpilot.registry.category_keys import (
    CATEGORY_GROUPS,
    category_group,
    category_key,
    holds_booleans,
    is_missing,
)
from modelpilot.registry.profile_formats import stored_categories
from modelpilot.registry.quality import label_key

QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
HISTOGRAM_BINS = 10
SKETCH_LEVELS = 1024
"""How many of a numeric feature's reference values its profile keeps for the KS test (see
``quantile_sketch``): their distribution function is the whole reference's within 1/2,048.
The KS test runs on windows of fewer than 1,000 rows, whose own distribution function moves
in steps of 1/999 or more, and flags distances of 0.054 and more (0.01 over two tests of one
feature, 999 rows, against any reference); an error a hundredth of that moves the p-value
there by about a tenth, as much as Stephens' approximation of it errs. Twice the levels would
halve that for twice the JSON (some 20 KB a feature at 1,024)."""
TOP_CATEGORIES = 1000
"""How many categories a profile names by count: a feature of up to this many has every one
named (a value outside them is unseen); with more, the rest are pooled
(``FeatureProfile.other``)."""


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
        text as its exact strings.

        A feature of at most ``TOP_CATEGORIES`` categories has them all named. With more, the
        most frequent ``TOP_CATEGORIES`` are named and the rest pooled (``other``); they are
        chosen on one half of the rows and counted on the other (``held_out``). Chosen for
        their own counts, the categories near the cut were those the sample held more often
        by chance, so their counts ran high, and the pooled rest's low, against any fresh
        sample (300 equally frequent cities: held-out rows of the same distribution read as
        drifted at p = 6e-14). Counted on rows that did not choose them, they are an honest
        sample; ``count`` and ``missing`` are then of those rows, as the counts are."""
        keyed, missing = _category_counts(values)
        boolean = holds_booleans(values)
        if len(keyed) <= TOP_CATEGORIES:
            ranked = sorted(keyed.items(), key=lambda item: -item[1])
            return cls(
                name,
                "categorical",
                int(values.size),
                missing,
                categories=dict(ranked),
                boolean=boolean,
            )
        choosing = _choosing_half(values.size)
        chosen, _ = _category_counts(values[choosing])
        named = sorted(chosen, key=lambda key: -chosen[key])[:TOP_CATEGORIES]
        counted, missing = _category_counts(values[~choosing])
        categories = {key: counted.pop(key, 0) for key in named}
        groups = np.zeros(CATEGORY_GROUPS, dtype=np.int64)
        for key, count in counted.items():
            groups[category_group(key)] += count
        rows = int(values.size - np.count_nonzero(choosing))
        return cls(
            name,
            "categorical",
            rows,
            missing,
            categories=categories,
            # Even 0: the profile has a tail, and a value outside the named ones may be of it
            # (the monitor calls its bin "other", not "unseen").
            other=sum(counted.values()),
            other_groups=tuple(int(n) for n in groups),
            held_out=True,
            boolean=boolean,
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
            return np.array(
                [[np.nan if v is None else v for v in row] for row in self.sample],
                dtype=np.float64,
            ).reshape(len(self.sample), len(self.features))
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
                stored = np.float32 if _float32_dtype(column) else np.float64
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


def _category_counts(values: pd.Series) -> tuple[dict[str, int], int]:
    """How many of ``values`` are in each category (by ``category_key``), and how many are
    missing."""
    missing = int(values.isna().sum())
    keyed: dict[str, int] = {}
    for value, count in values.dropna().value_counts(sort=False).items():
        key = category_key(value)
        if key is None:  # missing by the monitor's rule though pandas kept it
            missing += int(count)
        else:
            keyed[key] = keyed.get(key, 0) + int(count)
    return keyed, missing


def _choosing_half(rows: int) -> np.ndarray:
    """Which rows choose a feature's named categories (the others count them): half of them,
    drawn by a fixed seed, so that one data set always gives one profile. Not every other row:
    rows sorted by the feature would make the two halves copies of each other, and carry the
    luck of the choice to the counts."""
    choosing = np.zeros(rows, dtype=bool)
    choosing[np.random.default_rng(0).permutation(rows)[: rows // 2]] = True
    return choosing


def _float32_dtype(column: pd.Series) -> bool:
    """Whether a column holds float32 numbers: NumPy's float32, or pandas' nullable Float32
    (as a Parquet file's nullable float column reads with ``dtype_backend``)."""
    return getattr(column.dtype, "numpy_dtype", column.dtype) == np.float32


def is_numeric_feature(column: pd.Series) -> bool:
    """Whether a reference column is profiled as numbers (binned on its quantiles) rather than
    as categories: numbers that are not booleans."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


TIMES = (datetime.date, datetime.time, datetime.timedelta, np.datetime64, np.timedelta64)
"""Values of a column of dates or times held as objects (Parquet's date32 and time64 columns
read so; ``pd.Timestamp`` is a ``datetime.date`` too)."""
NESTED = (list, tuple, dict, set, np.ndarray)
"""Values of a column that holds several values a row (Parquet's list and struct columns)."""


def refuse_unprofiled(frame: pd.DataFrame) -> None:
    """InvalidInput naming the columns of ``frame`` that a profile cannot describe as one
    feature: dates, times and durations, and lists or records (several values a row).

    Dates and times were categories of their distinct values: every row of a time column is
    its own, and every one in fresh data is one the reference never held, so the column
    could never tell drift (and its tests once raised, failing the whole report). Turned
    into numbers they would drift always, as time moves on. Lists were categories of their
    text, or failed deep in registration with a traceback.
    """
    dates, nested = [], []
    types = pd.api.types
    for name, column in frame.items():
        if types.is_datetime64_any_dtype(column) or types.is_timedelta64_dtype(column):
            dates.append(str(name))
        elif column.dtype == object:
            kinds = set(map(type, column.dropna()))
            if any(issubclass(kind, TIMES) for kind in kinds):
                dates.append(str(name))
            elif any(issubclass(kind, NESTED) for kind in kinds):
                nested.append(str(name))
    if dates:
        raise InvalidInput(
            f"the reference's columns {dates} hold dates, times or durations, which drift "
            "cannot judge (every time in fresh data is one the reference never held): leave "
            "them out (modelpilot drift's --ignore COLUMN), or turn them into numbers (the "
            "hour, the weekday, days since an event, a duration in seconds) in all the data"
        )
    if nested:
        raise InvalidInput(
            f"the reference's columns {nested} hold lists or records (several values a row), "
            "and a feature holds one number or text a row: leave them out (modelpilot drift's "
            "--ignore COLUMN), or give each value a column of its own"
        )


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
