"""How a reference profile is stored: small JSON, and its long runs of numbers as float64
bytes in a table of their own, so that reading a wide model's profile is a few C calls on
megabytes, not a json.loads of tens of millions of characters."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from modelpilot.registry.profile import FeatureProfile, ReferenceProfile
from modelpilot.registry.schema import profile_arrays

PROFILE_FORMAT = 2
"""The stored form ``stored_form`` writes. Format 1 (no ``format`` key) is
``ReferenceProfile.to_dict`` as it is, every number in the JSON: a numeric feature's sketch
of 1,024 values took some 20 KB of it, and a model of 2,000 features stored 55 MB, whose
``json.loads`` alone (one C call, which never lets another thread run) stopped a serving
process for 3 s each time it made the version's monitor. Format 2 keeps each numeric
profile's arrays and the sample's columns of numbers as little-endian 8-byte numbers in
``profile_arrays`` (21 MB for that model; its JSON 0.5 MB), read with ``np.frombuffer``.
Format 1 profiles are read as they were. Its feature list is under ``feature_profiles``
rather than ``features``: a release before it fails on such a profile (KeyError
'features') rather than read its numeric features as empty (every value out of range)."""

PART_BYTES = 1 << 20
"""A profile's arrays are stored in rows of at most this many bytes: a database driver turns
each row into bytes in one C call (psycopg from hex text), which is then short."""

ARRAY_FIELDS: tuple[tuple[str, str], ...] = (
    ("quantile_levels", "<f8"),
    ("quantiles", "<f8"),
    ("bin_edges", "<f8"),
    ("bin_counts", "<i8"),
    ("bin_means", "<f8"),
    ("sketch", "<f8"),
)
"""A numeric ``FeatureProfile``'s arrays, in the order they are stored, and how."""

FLOATS, INTEGERS = "<f8", "<i8"
"""How a column of the sample is stored in the arrays; any other column is a JSON list."""


class StoredProfileError(ValueError):
    """A stored profile this release cannot read (see ``read_stored``)."""


def stored_form(profile: ReferenceProfile) -> tuple[dict[str, Any], bytes]:
    """``profile`` as the JSON and the bytes of format ``PROFILE_FORMAT``."""
    arrays: list[bytes] = []
    data = {
        "format": PROFILE_FORMAT,
        "n_rows": profile.n_rows,
        "feature_profiles": [_feature(f, arrays) for f in profile.features],
        "sample": _sample(profile.sample, arrays),
        "predictions": _feature(profile.predictions, arrays) if profile.predictions else None,
        "target": _feature(profile.target, arrays) if profile.target else None,
    }
    return data, b"".join(arrays)


def read_stored(data: dict[str, Any], arrays: bytes | bytearray) -> ReferenceProfile:
    """The profile that ``stored_form`` wrote (``arrays``: its parts joined), or an earlier
    release's (format 1, whole in ``data``)."""
    form = data.get("format", 1)
    if form == 1:
        return ReferenceProfile.from_dict(data)
    if form != PROFILE_FORMAT:
        raise StoredProfileError(
            f"it was stored in format {form} by a newer release of ModelPilot, and this one "
            f"reads formats 1 and {PROFILE_FORMAT}: upgrade ModelPilot"
        )
    reader = _Reader(arrays)
    try:
        features = tuple(_read_feature(f, reader) for f in data["feature_profiles"])
        sample = _read_sample(data["sample"], reader)
        predictions = _read_feature(data["predictions"], reader) if data["predictions"] else None
        target = _read_feature(data["target"], reader) if data["target"] else None
    except ValueError as exc:  # np.frombuffer past the end
        raise StoredProfileError(f"its arrays are cut short ({exc})") from exc
    if reader.left:
        raise StoredProfileError(f"its arrays hold {reader.left} bytes more than it describes")
    return ReferenceProfile(features, int(data["n_rows"]), sample, predictions, target)


def write_arrays(conn: Connection, model: str, version: int, arrays: bytes) -> None:
    """Store the arrays of ``model``'s ``version``'s profile (see ``stored_form``)."""
    if arrays:
        rows = [
            {"model": model, "version": version, "part": part, "data": data}
            for part, data in enumerate(parts(arrays))
        ]
        conn.execute(profile_arrays.insert(), rows)


def read_arrays(conn: Connection, model: str, version: int, data: dict[str, Any]) -> bytearray:
    """The arrays of ``model``'s ``version``'s profile, whose JSON is ``data`` (none for a
    profile of format 1)."""
    arrays = bytearray()
    if data.get("format", 1) == 1:
        return arrays
    query = (
        select(profile_arrays.c.data)
        .where((profile_arrays.c.model == model) & (profile_arrays.c.version == version))
        .order_by(profile_arrays.c.part)
    )
    # Part by part: each copy is short (one join of all of a wide model's held the
    # interpreter for a tenth of a second on a busy machine).
    for part in conn.execute(query).scalars():
        arrays += part
    return arrays


def parts(arrays: bytes) -> Iterable[bytes]:
    """``arrays`` in the rows of ``profile_arrays`` (``PART_BYTES`` each, the last fewer)."""
    return (arrays[start : start + PART_BYTES] for start in range(0, len(arrays), PART_BYTES))


def _feature(feature: FeatureProfile, arrays: list[bytes]) -> dict[str, Any]:
    data = feature.to_dict()
    if feature.kind != "numeric":
        return data
    lengths = []
    for name, dtype in ARRAY_FIELDS:
        values = data.pop(name)
        if name == "bin_means":  # None: an empty bin; the means stored are finite
            values = [math.nan if v is None else v for v in values]
        arrays.append(np.asarray(values, dtype=dtype).tobytes())
        lengths.append(len(values))
    data["arrays"] = lengths
    return data


def _read_feature(data: dict[str, Any], reader: _Reader) -> FeatureProfile:
    if data["kind"] == "numeric":
        data = dict(data)
        for (name, dtype), length in zip(ARRAY_FIELDS, data.pop("arrays"), strict=True):
            values = reader.take(dtype, int(length)).tolist()
            if name == "bin_means":
                values = [None if math.isnan(v) else v for v in values]
            data[name] = values
    return FeatureProfile.from_dict(data)


def _sample(rows: Sequence[Sequence[Any]], arrays: list[bytes]) -> Any:
    """The sample by column: a column of floats (or missing values) and one of integers as
    8-byte numbers in ``arrays``, any other as a JSON list. Rows of unequal length (no
    profile has them) stay a JSON list of rows."""
    width = len(rows[0]) if rows else 0
    if any(len(row) != width for row in rows):
        return [list(row) for row in rows]
    columns: list[Any] = []
    for values in zip(*rows, strict=True) if rows else ():
        if all(v is None or (type(v) is float and v == v) for v in values):
            arrays.append(
                np.array([math.nan if v is None else v for v in values], FLOATS).tobytes()
            )
            columns.append(FLOATS)
        elif all(type(v) is int and -(2**63) <= v < 2**63 for v in values):
            arrays.append(np.array(values, INTEGERS).tobytes())
            columns.append(INTEGERS)
        else:
            columns.append(list(values))
    return {"rows": len(rows), "columns": columns}


def _read_sample(data: Any, reader: _Reader) -> list[list[Any]]:
    if isinstance(data, list):
        return [list(row) for row in data]
    rows, columns = int(data["rows"]), data["columns"]
    if not rows:
        return []
    out = np.empty((rows, len(columns)), dtype=object)
    for index, column in enumerate(columns):
        if column == FLOATS:
            numbers = reader.take(FLOATS, rows)
            values = numbers.astype(object)
            values[np.isnan(numbers)] = None
            out[:, index] = values
        elif column == INTEGERS:
            out[:, index] = reader.take(INTEGERS, rows).astype(object)
        else:
            for row, value in enumerate(column):  # a list or a dict set as one value
                out[row, index] = value
    # Row by row: one call for the whole sample (half a million values of a wide model's)
    # would hold the interpreter for as long as all of them take.
    return [row.tolist() for row in out]


class _Reader:
    """The arrays of a stored profile, read in the order they were written."""

    def __init__(self, arrays: bytes | bytearray) -> None:
        self._arrays = arrays
        self._at = 0

    def take(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self._arrays, dtype=dtype, count=count, offset=self._at)
        self._at += values.nbytes
        return values

    @property
    def left(self) -> int:
        return len(self._arrays) - self._at
