"""Drift between two datasets, or between a version's reference and its logged traffic.

The same bins, scores and verdicts as the live monitor (``binning``, ``drift``): the reference
becomes a profile, the current data is counted on its bins chunk by chunk, so a current file
of any size streams through in constant memory (the rows kept for the KS test are the last
``large_sample_rows``, which is all of them whenever the test is used). The KS test compares
the current values with all of the reference: given two files, with every reference value;
from the log, as the live monitor does, with the profile's sketch of them (its values at
1,024 evenly spaced quantile levels, their distribution function within 1/2,048).
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from modelpilot.errors import InvalidInput
from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.category_bins import categorical_bins, category_slots
from modelpilot.monitoring.drift import DriftReport, DriftThresholds
from modelpilot.monitoring.log_records import LogEntry
from modelpilot.monitoring.window import RecentRows
from modelpilot.registry.category_keys import category_key
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.signature import Signature
from modelpilot.tabular import has_names, refuse_nested

NEW_VALUES_SHOWN = 3
"""How many of a categorical feature's new values (most common first) its reason names."""
NEW_VALUES_KEPT = 10_000
"""How many distinct new values of a feature are counted: past it the rarer half is dropped,
so that a current file of ids does not hold them all in memory."""


@dataclass(frozen=True, slots=True)
class NewValues:
    """A categorical feature's values that the reference never had, the most common first:
    the share of rows they hold says that something new came, these say what."""

    top: tuple[tuple[str, int], ...]
    """Each value (as its category) and its count, the most common first."""
    distinct: int | None
    """How many distinct new values there were; None where more than ``NEW_VALUES_KEPT``."""
    rows: int
    """The current data's rows, which the shares are of."""

    def __str__(self) -> str:
        # The empty text said in words: '' alone was easily read past.
        shown = ", ".join(
            f"{_clipped(value)!r} ({'empty, ' if not value else ''}{count / max(self.rows, 1):.1%})"
            for value, count in self.top[:NEW_VALUES_SHOWN]
        )
        rest = (self.distinct or 0) - NEW_VALUES_SHOWN
        more = " and more" if self.distinct is None else f" and {rest:,} more" if rest > 0 else ""
        return f"new values, the most common first: {shown}{more}"


@dataclass(frozen=True, slots=True)
class Comparison:
    """A drift report with the bins behind it, for tables and plots."""

    report: DriftReport
    binning: ProfileBinning
    counts: np.ndarray
    """The current data's counts on the reference bins (flat, as ``binning`` lays them out)."""
    new_values: Mapping[str, NewValues] = field(default_factory=dict)
    """Of each categorical feature whose reference named every category, the values the
    current data held that it never had (none: no entry); its reason names them too."""


def compare(
    profile: ReferenceProfile,
    chunks: Iterable[pd.DataFrame | np.ndarray],
    thresholds: DriftThresholds | None = None,
    on_rows: Callable[[int], None] | None = None,
    reference: pd.DataFrame | None = None,
    on_testing: Callable[[], None] | None = None,
) -> Comparison:
    """Count ``chunks`` (columns named, or in the profile's order) on ``profile``'s bins; with
    no rows at all, the report is that of an empty window (no scores, no verdict).

    ``reference``: the data ``profile`` was made of, whose values the KS test then takes
    whole, rather than the profile's sketch of them (within 1/2,048 of them; a profile made
    before sketches has a sample of 256 rows, against which a current file drawn as the
    reference was read p = 0.21 where scipy's ``ks_2samp`` on the two files read 0.56).
    ``on_rows`` is called with each chunk's rows, ``on_testing`` once they are all counted and
    the features' tests begin (for progress bars)."""
    thresholds = thresholds or DriftThresholds()
    sample = None if reference is None else _columns(reference, profile.feature_names)
    binning = ProfileBinning(profile, sample)
    counts = np.zeros(binning.size, dtype=np.int64)
    sums = np.zeros(binning.sums_size)
    recent = RecentRows(thresholds.large_sample_rows)
    new = _NewValueCounts(profile)
    rows = 0
    numeric = [f.name for f in profile.features if f.kind == "numeric"]
    names = set(profile.feature_names)
    for chunk in chunks:
        if isinstance(chunk, pd.DataFrame):
            refuse_nested(chunk[[c for c in chunk.columns if str(c) in names]], rows)
            _refuse_text_for_numbers(chunk, numeric, rows)
        array = _columns(chunk, profile.feature_names)
        chunk_counts, chunk_sums = binning.count(array)
        counts += chunk_counts
        sums += chunk_sums
        recent.add(array)
        new.add(array)
        rows += array.shape[0]
        if on_rows is not None:
            on_rows(array.shape[0])
    if on_testing is not None:
        on_testing()
    # No rows is no verdict, as too few are: the report says so (a CI job told to fail
    # without a verdict must not see an error of its own instead).
    sample = recent.last(rows) if rows < thresholds.large_sample_rows else None
    report = binning.report(counts, sums, sample, thresholds)
    found = new.found(rows)
    features = tuple(
        replace(f, reason=f"{f.reason}; {found[f.name]}") if f.name in found else f
        for f in report.features
    )
    return Comparison(replace(report, features=features), binning, counts, found)


class _NewValueCounts:
    """Counts of the values of the categorical features that the reference never had, as
    chunks of the current data come (see ``NewValues``). Only features whose profile named
    every reference category: where it pooled the rarer ones, a value outside the named ones
    may be one of them."""

    def __init__(self, profile: ReferenceProfile) -> None:
        bins = (
            (feature.name, categorical_bins(index, 0, feature))
            for index, feature in enumerate(profile.features)
            if feature.kind == "categorical"
        )
        self._bins = [(name, spec) for name, spec in bins if not spec.tail]
        self._counts: dict[str, Counter[str]] = {name: Counter() for name, _ in self._bins}
        self._cut: set[str] = set()

    def add(self, rows: np.ndarray) -> None:
        for name, spec in self._bins:
            # Each distinct value binned once, by the monitor's rule (category_slots).
            values = pd.Series(rows[:, spec.index], dtype=object).value_counts()
            if values.empty:
                continue
            new = category_slots(values.index.to_numpy(dtype=object), spec) == spec.other
            counts = self._counts[name]
            for value, count in zip(values.index[new], values.to_numpy()[new], strict=True):
                key = category_key(value)
                if key is not None:
                    counts[key] += int(count)
            if len(counts) > NEW_VALUES_KEPT:
                self._counts[name] = Counter(dict(counts.most_common(NEW_VALUES_KEPT // 2)))
                self._cut.add(name)

    def found(self, rows: int) -> dict[str, NewValues]:
        return {
            name: NewValues(
                tuple(counts.most_common(NEW_VALUES_SHOWN)),
                None if name in self._cut else len(counts),
                rows,
            )
            for name, counts in self._counts.items()
            if counts
        }


def _clipped(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def log_rows(entries: Iterable[LogEntry], signature: Signature) -> np.ndarray:
    """The input rows of logged requests to a tabular version, one row per predicted row."""
    return _stacked(_request_rows(entries, signature))


def newest_log_rows(
    entries: Sequence[LogEntry], signature: Signature, rows: int
) -> tuple[int, np.ndarray]:
    """The newest ``rows`` input rows of logged requests (oldest first), as ``log_rows``
    gives them, and how many of the newest requests hold them (the oldest of those may be
    in part): a window of rows, as the live monitor's is, of requests of any size."""
    parts = _request_rows(entries, signature)
    held, requests = 0, 0
    for part in reversed(parts):
        if held >= rows:
            break
        held += part.shape[0]
        requests += 1
    stacked = _stacked(parts[len(parts) - requests :])
    return requests, stacked[max(stacked.shape[0] - rows, 0) :]


def _request_rows(entries: Iterable[LogEntry], signature: Signature) -> list[np.ndarray]:
    """Each logged request's input rows (2-D), of those that have the version's input."""
    if not signature.is_tabular:
        raise InvalidInput("drift from the log needs a tabular model (one 2-D input)")
    name = signature.inputs[0].name
    parts = [np.asarray(e.inputs[name], dtype=object) for e in entries if name in e.inputs]
    parts = [p.reshape(-1, p.shape[-1]) if p.ndim > 1 else p.reshape(1, -1) for p in parts]
    if not parts:
        raise InvalidInput("the inference log holds no requests for this version in that window")
    return parts


def _stacked(parts: list[np.ndarray]) -> np.ndarray:
    stacked = np.concatenate(parts)
    try:
        return stacked.astype(np.float64)
    except (TypeError, ValueError):
        return stacked


def _refuse_text_for_numbers(chunk: pd.DataFrame, numeric: list[str], first_row: int) -> None:
    """A column of numbers in the reference that holds text in the current data would be
    counted as missing throughout (and read as drift in its missing share): say so instead."""
    for name in numeric:
        if name not in chunk.columns or pd.api.types.is_numeric_dtype(chunk[name].dtype):
            continue
        column = chunk[name]
        text = column.notna() & pd.to_numeric(column, errors="coerce").isna()
        if text.any():
            at, count = int(np.argmax(text.to_numpy())), int(text.sum())
            raise InvalidInput(
                f"column {name!r} holds numbers in the reference but text in the current data "
                f"({count} value{'s' if count > 1 else ''} in this part of it, the first "
                f"{column.iloc[at]!r} in data row {first_row + at + 1}); fix or drop them"
            )


def _columns(chunk: pd.DataFrame | np.ndarray, names: list[str]) -> np.ndarray:
    """``chunk``'s columns of the features ``names``, in their order: by name where it has
    names; by position where it has none (an array, an .npy file's frame), every column then
    a feature. An .npy file of more columns than the reference was compared on its first
    ones, matched by their positions' names ("0", "1"...): a column added or inserted
    upstream shifts every feature after it, and the report was of the wrong columns."""
    if isinstance(chunk, np.ndarray):
        array = chunk if chunk.ndim == 2 else chunk.reshape(-1, 1)
        if array.shape[1] != len(names):
            raise InvalidInput(_other_count(array.shape[1], names))
        return array
    columns = [str(c) for c in chunk.columns]
    if not has_names(chunk) and len(columns) != len(names):
        raise InvalidInput(_other_count(len(columns), names))
    if set(names) <= set(columns):
        frame = chunk.set_axis(columns, axis=1)[names]
    elif len(columns) == len(names) and all(c.isdigit() for c in columns):
        frame = chunk
    else:
        missing = [n for n in names if n not in columns]
        raise InvalidInput(
            f"the current data lacks the reference's columns {missing}; it has {columns}. "
            "Where they are no features (the target, an id), leave them out of the "
            f"comparison: modelpilot drift's {_ignored(missing)}"
        )
    # Every missing value as NaN, as the monitor reads one: pandas' NA in a nullable column
    # (Int64, boolean, string) was once a category, or crashed the KS test.
    if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    return frame.to_numpy(dtype=object, na_value=np.nan)


def _ignored(names: list[str]) -> str:
    """The ``--ignore`` options that leave ``names`` out, quoted as a shell takes them: of
    many, the first three (a file that lacks many is more likely the wrong file)."""
    shown = " ".join(f"--ignore {shlex.quote(name)}" for name in names[:3])
    return shown + (" ..." if len(names) > 3 else "")


def _other_count(columns: int, names: list[str]) -> str:
    shown = ", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
    return (
        f"the current data has {columns} columns; the reference has {len(names)} ({shown}); "
        "columns without names are matched by their positions, so both must have the same"
    )
