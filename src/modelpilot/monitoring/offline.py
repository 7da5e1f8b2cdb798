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

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelpilot.errors import InvalidInput
from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftReport, DriftThresholds
from modelpilot.monitoring.log_records import LogEntry
from modelpilot.monitoring.window import RecentRows
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.signature import Signature


@dataclass(frozen=True, slots=True)
class Comparison:
    """A drift report with the bins behind it, for tables and plots."""

    report: DriftReport
    binning: ProfileBinning
    counts: np.ndarray
    """The current data's counts on the reference bins (flat, as ``binning`` lays them out)."""


def compare(
    profile: ReferenceProfile,
    chunks: Iterable[pd.DataFrame | np.ndarray],
    thresholds: DriftThresholds | None = None,
    on_rows: Callable[[int], None] | None = None,
    reference: pd.DataFrame | None = None,
) -> Comparison:
    """Count ``chunks`` (columns named, or in the profile's order) on ``profile``'s bins; with
    no rows at all, the report is that of an empty window (no scores, no verdict).

    ``reference``: the data ``profile`` was made of, whose values the KS test then takes
    whole, rather than the profile's sketch of them (within 1/2,048 of them; a profile made
    before sketches has a sample of 256 rows, against which a current file drawn as the
    reference was read p = 0.21 where scipy's ``ks_2samp`` on the two files read 0.56)."""
    thresholds = thresholds or DriftThresholds()
    sample = None if reference is None else _columns(reference, profile.feature_names)
    binning = ProfileBinning(profile, sample)
    counts = np.zeros(binning.size, dtype=np.int64)
    sums = np.zeros(binning.sums_size)
    recent = RecentRows(thresholds.large_sample_rows)
    rows = 0
    numeric = [f.name for f in profile.features if f.kind == "numeric"]
    for chunk in chunks:
        if isinstance(chunk, pd.DataFrame):
            _refuse_text_for_numbers(chunk, numeric, rows)
        array = _columns(chunk, profile.feature_names)
        chunk_counts, chunk_sums = binning.count(array)
        counts += chunk_counts
        sums += chunk_sums
        recent.add(array)
        rows += array.shape[0]
        if on_rows is not None:
            on_rows(array.shape[0])
    # No rows is no verdict, as too few are: the report says so (a CI job told to fail
    # without a verdict must not see an error of its own instead).
    sample = recent.last(rows) if rows < thresholds.large_sample_rows else None
    return Comparison(binning.report(counts, sums, sample, thresholds), binning, counts)


def log_rows(entries: Iterable[LogEntry], signature: Signature) -> np.ndarray:
    """The input rows of logged requests to a tabular version, one row per predicted row."""
    if not signature.is_tabular:
        raise InvalidInput("drift from the log needs a tabular model (one 2-D input)")
    name = signature.inputs[0].name
    parts = [np.asarray(e.inputs[name], dtype=object) for e in entries if name in e.inputs]
    parts = [p.reshape(-1, p.shape[-1]) if p.ndim > 1 else p.reshape(1, -1) for p in parts]
    if not parts:
        raise InvalidInput("the inference log holds no requests for this version in that window")
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
    if isinstance(chunk, np.ndarray):
        array = chunk if chunk.ndim == 2 else chunk.reshape(-1, 1)
        if array.shape[1] != len(names):
            raise InvalidInput(
                f"the current data has {array.shape[1]} columns; the reference has "
                f"{len(names)} ({', '.join(names)})"
            )
        return array
    columns = [str(c) for c in chunk.columns]
    if set(names) <= set(columns):
        frame = chunk.set_axis(columns, axis=1)[names]
    elif len(columns) == len(names) and all(c.isdigit() for c in columns):
        frame = chunk
    else:
        missing = [n for n in names if n not in columns]
        raise InvalidInput(
            f"the current data lacks the reference's columns {missing}; it has {columns}"
        )
    # Every missing value as NaN, as the monitor reads one: pandas' NA in a nullable column
    # (Int64, boolean, string) was once a category, or crashed the KS test.
    if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    return frame.to_numpy(dtype=object, na_value=np.nan)
