"""Which category a value of a categorical feature counts in: one rule for the reference
profile, the live monitor and offline comparison, so that a value arriving as another type
(bytes, a NumPy scalar, a boolean as 1.0) is still the same category."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

CATEGORY_GROUPS = 64
"""Groups that a categorical feature's values are hashed into (``category_group``): the
monitor counts a window's values outside the named categories by group, and a profile with a
pooled tail keeps the tail's rows by group, so that one value recurring among them can be told
from many that each come once (see ``monitoring.category_findings.recurring_test``)."""
TRUE, FALSE = "True", "False"
"""The categories of a boolean feature (see ``holds_booleans``), as ``category_key`` writes
``True`` and ``False``."""


def category_key(value: Any) -> str | None:
    """The category a value counts in, or None when it is missing: one rule for the profile,
    the live monitor and offline comparison, so that a value arriving as another type is
    still the same category.

    Missing is None, NaN and pandas' NA and NaT (nullable Parquet columns hold them: NA was
    once counted as the category "<NA>"). Bytes are their text, NumPy scalars their Python
    value (``np.True_`` is "True"). A boolean feature's other spellings (1.0, "true") are
    the binning's to map (see ``FeatureProfile.boolean``), as they are categories of their
    own in a feature of text."""
    if is_missing(value):
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def category_group(key: str) -> int:
    """The group (of ``CATEGORY_GROUPS``) of a category, by its ``category_key``: a hash that
    is the same in every process and release (Python's own hash of text is salted per
    process), so that a profile's groups and a window's agree."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % CATEGORY_GROUPS


def is_missing(value: Any) -> bool:
    """Whether a value counts as missing (see ``category_key``)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating | np.datetime64 | np.timedelta64):
        return bool(value != value)  # NaN, and NumPy's NaT
    return False


def holds_booleans(values: pd.Series) -> bool:
    """Whether a column is of truth values: booleans (a boolean column, as Parquet and pandas
    give it, and a CSV column of the words true and false, which pandas reads so), with
    missing values or without, and not only missing values.

    Text is not, whatever it spells: a column the model takes as text (a CSV's is read as
    text for such a model) is encoded by its exact strings, "TRUE" being a category it never
    saw where it was fitted on "true"; counted as one boolean, the two read as no drift while
    the model's answers collapsed."""
    if pd.api.types.is_bool_dtype(values):
        return bool(values.size)
    if values.dtype != object:
        return False
    present = values.dropna()
    return bool(present.size) and all(isinstance(v, bool | np.bool_) for v in present)


def is_boolean(categories: Collection[str]) -> bool:
    """Whether a feature's categories are the two truth values, however written ("true",
    "False"): how a profile made before ``FeatureProfile.boolean`` is read, which folded a
    column of those words as text too."""
    names = {name.lower() for name in categories}
    return bool(names) and names <= {"true", "false"}


def boolean_counts(counts: dict[str, int]) -> dict[str, int]:
    """A boolean feature's counts under ``TRUE`` and ``FALSE`` ("true" and "TRUE" added up)."""
    out: dict[str, int] = {}
    for name, count in counts.items():
        key = TRUE if name.lower() == "true" else FALSE
        out[key] = out.get(key, 0) + count
    return out
