"""Reading and writing tabular data files: CSV, Parquet and NumPy ``.npy``, whole or in chunks."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelpilot.errors import BadRequest, InvalidInput

SUFFIXES = (".csv", ".parquet", ".pq", ".npy")

MISSING_WORDS = frozenset(
    [
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    ]
)
"""What ``read_csv`` reads as a missing value by default (its documented ``na_values``)."""


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if path.is_dir():
        raise BadRequest(
            f"{path} is a directory: give a file (a directory of Parquet files, as Spark and "
            "Dask write one, is read when its name ends in .parquet)"
        )
    if suffix == ".csv" or path.name.lower().endswith(".csv.gz"):
        return "csv"
    if suffix == ".npy":
        return "npy"
    raise BadRequest(
        f"cannot read {path.name}: use a CSV (.csv, with a header row), Parquet (.parquet) or "
        "NumPy (.npy) file"
    )


def _exists(path: Path, kind: str) -> None:
    """BadRequest unless ``path`` is a file, or a directory of Parquet files (a partitioned
    data set, which pandas and Spark read as one table)."""
    if not (path.is_file() or (kind == "parquet" and path.is_dir())):
        raise BadRequest(f"no such file: {path}")


_FORMATS = {"csv": "CSV", "parquet": "Parquet", "npy": "a NumPy .npy file"}


@contextmanager
def _reading(path: Path, kind: str) -> Iterator[None]:
    """Turn what the readers raise on a file that is not what its name says (empty,
    truncated, another format, not UTF-8) into one line that names the file."""
    try:
        yield
    except (ValueError, EOFError) as exc:  # pandas' and pyarrow's errors are ValueErrors
        reason = str(exc).strip() or type(exc).__name__
        if isinstance(exc, EOFError):
            reason = "it ends too soon"
        elif isinstance(exc, UnicodeDecodeError):
            reason = f"it is not UTF-8 text ({reason})"
        elif "allow_pickle" in reason:  # NumPy's guess for whatever is not an .npy array
            reason = "it is no array of numbers or strings (it would have to be unpickled)"
        raise BadRequest(f"cannot read {path.name} as {_FORMATS[kind]}: {reason}") from None


def has_names(frame: pd.DataFrame) -> bool:
    """True when the columns are real feature names (CSV, Parquet), not positions (.npy)."""
    return all(isinstance(c, str) for c in frame.columns)


def refuse_repeated(names: Sequence[object], where: str) -> None:
    """BadRequest naming a column that appears more than once among ``names``: pandas reads
    a CSV's second "a" as "a.1", which then passed for a feature of its own (compared with
    nothing, or one too many for the model), and Parquet keeps both under one name."""
    counts = Counter(str(name) for name in names if name == name and str(name))  # (not NaN)
    repeated = [(name, count) for name, count in counts.items() if count > 1]
    if repeated:
        name, count = repeated[0]
        times = "twice" if count == 2 else f"{count} times"
        raise BadRequest(
            f"column {name!r} appears {times} in {where}; give each column a name of its own"
        )


def refuse_nested(frame: pd.DataFrame, first_row: int = 0, hint: str = "") -> None:
    """InvalidInput naming the first column of ``frame`` whose values are lists, records or
    sets (Parquet's list, struct and map columns): a feature is a number or a text, and such
    a column failed deep in registration with a traceback ("unhashable type"), or was compared
    as categories of each list's text. ``first_row``: the data row of ``frame``'s first,
    where it is one part of a file; ``hint``: how to leave the column out."""
    for name, column in frame.items():
        if isinstance(column.dtype, pd.ArrowDtype) and _is_nested(column.dtype.pyarrow_dtype):
            at = int(np.argmax(column.notna().to_numpy()))  # (the first value, if any)
        elif column.dtype == object and pd.api.types.infer_dtype(column) in _MIXED:
            found = np.flatnonzero([isinstance(v, _NESTED) for v in column])
            if not found.size:
                continue
            at = int(found[0])
        else:
            continue
        value = column.iloc[at]
        kind = (
            "records" if isinstance(value, dict) else "sets" if isinstance(value, set) else "lists"
        )
        shown = repr(value.tolist() if isinstance(value, np.ndarray) else value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise InvalidInput(
            f"column {str(name)!r} holds {kind} ({shown} in data row {first_row + at + 1}), but "
            "a feature is a number or a text: spread its values into columns of their own"
            + (f", or {hint}" if hint else "")
        )


_MIXED = ("mixed", "mixed-integer", "unknown-array")
"""What ``infer_dtype`` calls a column of objects that may hold lists (one of strings or
numbers alone is not looked at value by value)."""
_NESTED = (list, tuple, dict, set, np.ndarray)


def _is_nested(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_nested(arrow_type))


def _dataset(path: Path) -> Any:
    """A directory of Parquet files as one data set (``key=value`` subdirectories are the
    columns they name, as pandas and Spark read them)."""
    import pyarrow.dataset as ds

    return ds.dataset(path, format="parquet", partitioning="hive")


def _refuse_strange_header(path: Path, kind: str) -> None:
    """BadRequest for a header that pandas would read into something else than it says: a
    column named twice (see ``refuse_repeated``), a CSV header of numbers alone (see
    ``_refuse_numbers_for_names``), or a CSV of one column whose name holds semicolons or
    tabs, which is no comma-separated file (every row a single text).

    Such a file is refused rather than read with a guessed separator: files separated by
    semicolons mostly write decimal commas ("1,5"), which would then be read as text."""
    if kind == "parquet":
        if path.is_dir():
            names = list(_dataset(path).schema.names)
        else:
            import pyarrow.parquet as pq

            names = list(pq.read_schema(path).names)
        refuse_repeated(names, f"the columns of {path.name}")
        return
    if kind != "csv":
        return
    first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    names = list(first.iloc[0]) if len(first) else []
    _refuse_numbers_for_names(path, names)
    refuse_repeated(names, f"the header of {path.name}")
    mark = next((m for m in (";", "\t") if len(names) == 1 and m in names[0]), None)
    if mark is not None:
        shown = names[0] if len(names[0]) <= 60 else names[0][:57] + "..."
        raise BadRequest(
            f"cannot read {path.name} as CSV: its header {shown!r} is one column holding "
            f"{'semicolons' if mark == ';' else 'tabs'}, so each row would be one text; "
            "ModelPilot reads comma-separated files: write it with commas (with pandas: "
            f"read_csv(path, sep={mark!r}).to_csv(new_path, index=False), adding decimal=',' "
            "where its numbers have decimal commas)"
        )


def _refuse_numbers_for_names(path: Path, names: Sequence[str]) -> None:
    """BadRequest for a CSV header whose every cell reads as a number: the first row of a
    file written without a header (``to_csv(header=False)``, ``np.savetxt``), which pandas
    takes for the column names. Read as one, a reference's first row was lost and its values
    became the version's feature names ("6.7", "3.3"...), which requests, metrics and drift
    reports then had to use, and only a new version could undo.

    The names pandas gives a frame's unnamed columns, 0, 1, 2..., in that order (a NumPy
    array written with ``pd.DataFrame(array).to_csv``), are a header, positional like an
    .npy file's; so is an empty cell beside them (the index, written with its frame)."""
    cells = [name for name in names if name.strip()]
    if not cells or not all(_reads_as_number(cell) for cell in cells):
        return
    if cells == [str(position) for position in range(len(cells))]:
        return
    shown = ", ".join(cells[:4]) + (", ..." if len(cells) > 4 else "")
    raise BadRequest(
        f"cannot read {path.name} as CSV: its header row is all numbers ({shown}), so it is "
        "likely the first row of data, which would be taken for the column names and lost; "
        "ModelPilot reads CSV files with a header row of column names: write one (with pandas: "
        "read_csv(path, header=None, names=[...]).to_csv(new_path, index=False))"
    )


def _reads_as_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))  # ("nan" and "inf" are words a header may hold)
    except ValueError:
        return False


def read_table(
    path: Path, max_rows: int | None = None, text_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """The whole table (or its first ``max_rows``); .npy files get positional column names.
    A CSV's ``text_columns`` are read as text, as by ``iter_table``; its other columns of
    ISO 8601 dates as dates (see ``dates_as_times``)."""
    path = Path(path)
    kind = _kind(path)
    _exists(path, kind)
    with _reading(path, kind):
        _refuse_strange_header(path, kind)
        if kind == "csv":
            frame: pd.DataFrame = pd.read_csv(path, nrows=max_rows, **_as_text(path, text_columns))
            return dates_as_times(frame, text_columns)
        if kind == "parquet":
            if path.is_dir():  # (as iter_table reads it: pandas makes its key columns categories)
                frame = _dataset(path).to_table().to_pandas()
            else:
                frame = pd.read_parquet(path)
            frame = decimals_as_numbers(frame)
            return frame if max_rows is None else frame.head(max_rows)
        array = np.load(path, allow_pickle=False, mmap_mode="r")
        if max_rows is not None:
            array = array[:max_rows]
        return _frame(np.asarray(array))


def iter_table(
    path: Path, chunk_rows: int = 10_000, text_columns: Sequence[str] = ()
) -> Iterator[pd.DataFrame]:
    """The table in chunks of at most ``chunk_rows`` rows, never all in memory at once.

    A CSV's ``text_columns`` are read as text even where every value looks like a number
    (a zip code, an id with leading zeros); empty cells stay missing. Other formats keep the
    types they store.
    """
    path = Path(path)
    kind = _kind(path)
    _exists(path, kind)
    with _reading(path, kind):  # (what the caller does with each chunk is not inside)
        _refuse_strange_header(path, kind)
        if kind == "csv":
            text = _as_text(path, text_columns)
            with pd.read_csv(path, chunksize=chunk_rows, **text) as reader:
                yield from reader
        elif kind == "parquet" and path.is_dir():
            for batch in _dataset(path).to_batches(batch_size=chunk_rows):
                if batch.num_rows:
                    yield decimals_as_numbers(batch.to_pandas())
        elif kind == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(path) as file:
                for batch in file.iter_batches(batch_size=chunk_rows):
                    yield decimals_as_numbers(batch.to_pandas())
        else:
            array = np.load(path, allow_pickle=False, mmap_mode="r")
            for start in range(0, len(array), chunk_rows):
                yield _frame(np.asarray(array[start : start + chunk_rows]))


def decimals_as_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its columns of decimals as float64 (missing as NaN): Parquet's decimal
    columns (money, as databases export it), which pandas holds as objects of
    ``decimal.Decimal``, as it does SQL's numeric columns.

    As objects they were text to every rule that types a column: drift judged an amount as
    categories of its distinct values, and registration said a model of numbers "takes
    text". A float64 keeps 15 significant digits, more than a model's input or drift's bins
    tell apart."""
    decimals = [
        name
        for name, column in frame.items()
        if column.dtype == object and _all_decimal(column.dropna())
    ]
    return frame.astype(dict.fromkeys(decimals, np.float64)) if decimals else frame


def _all_decimal(present: pd.Series) -> bool:
    return len(present) > 0 and all(isinstance(value, Decimal) for value in present)


def dates_as_times(frame: pd.DataFrame, text: Collection[str] = ()) -> pd.DataFrame:
    """``frame`` with its columns of text whose every value is an ISO 8601 date or date-time
    ("2024-01-31", "2024-01-31 12:00:00", "2024-01-31T12:00:00.5+01:00") as datetime64,
    as Parquet stores such a column, and as pandas reads numbers from CSV text.

    As text a CSV's column of times was a category of each distinct time, which no
    reference can have held (fresh traffic comes later), so it could never tell drift, where
    the same column from Parquet was refused by name (``refuse_unprofiled``), with what to
    do instead. Read as times, it is refused alike. The columns ``text`` stay text (a model
    that takes dates as text categories is served them so). Values of several time zones
    are read in UTC; a column with a value that is no such date (or no valid one) stays
    text."""
    dates = {}
    for name, column in frame.items():
        if str(name) in text or not pd.api.types.is_string_dtype(column):
            continue
        present = column.dropna().astype(str)
        # The first value first: most columns of text are no dates, and tell it at once.
        if present.empty or not re.fullmatch(_ISO_DATE, present.iloc[0]):
            continue
        if not present.str.fullmatch(_ISO_DATE).all():
            continue
        for utc in (False, True):  # (one offset, or none: as written; several: in UTC)
            try:
                dates[name] = pd.to_datetime(column, format="ISO8601", utc=utc)
                break
            except (ValueError, OverflowError):
                continue
    return frame.assign(**{str(name): values for name, values in dates.items()}) if dates else frame


_ISO_DATE = (
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
"""An ISO 8601 date, with a time of day or without (the form Python, pandas, databases and
spreadsheets write dates in); a year or a number alone (2024, 20240131) is no date here."""


def _as_text(path: Path, columns: Sequence[str]) -> dict[str, Any]:
    """``read_csv``'s options for reading ``columns`` of the CSV at ``path`` as text.

    Their values are kept as written: "01234" stays "01234", and the words pandas takes for
    missing values elsewhere ("NA", "None", "null"...) are categories like any other (North
    America, no discount); only an empty cell is missing. Columns the file lacks are passed
    over; the others read as pandas reads them."""
    if not columns:
        return {}
    header = pd.read_csv(path, nrows=0).columns
    text = [c for c in header if c in set(columns)]
    if not text:
        return {}
    missing: dict[str, Collection[str]] = {c: MISSING_WORDS for c in header if c not in text}
    missing.update({column: ("",) for column in text})
    return {
        "dtype": dict.fromkeys(text, str),
        "keep_default_na": False,
        "na_values": missing,
    }


def count_rows(path: Path) -> int | None:
    """Number of data rows, cheaply where the format allows (for progress bars); None where
    it cannot be told without reading the file (a compressed CSV, or one pandas cannot
    read, which reading it then says)."""
    path = Path(path)
    kind = _kind(path)
    _exists(path, kind)
    with _reading(path, kind):
        if kind == "parquet" and path.is_dir():
            return int(_dataset(path).count_rows())
        if kind == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if kind == "npy":
            return int(np.load(path, allow_pickle=False, mmap_mode="r").shape[0])
    if path.suffix.lower() == ".gz":
        return None
    if path.stat().st_size == 0:
        return 0
    lines = _count_lines(path)
    return _count_csv_rows(path) if lines is None else lines


def _count_lines(path: Path) -> int | None:
    """The data rows of a CSV of one line a row, counted by its line breaks (a gigabyte a
    second); None for one that holds a quotation mark: a quoted value may hold line breaks
    (free text, addresses), which are no rows, so that ``_count_csv_rows`` counts it."""
    with path.open("rb") as file:
        lines = 0
        for chunk in iter(lambda: file.read(1 << 20), b""):
            if b'"' in chunk:
                return None
            lines += chunk.count(b"\n")
        file.seek(-1, 2)
        ends_with_newline = file.read(1) == b"\n"
    return max(0, lines - 1 + (0 if ends_with_newline else 1))


def _count_csv_rows(path: Path) -> int | None:
    """The data rows of a CSV as ``iter_table`` reads them, by pandas' own parser (quoted
    line breaks within a row, blank lines left out), one column kept of each chunk: a third
    of reading the whole file (as text, three times that)."""
    try:
        # (low_memory=False: the chunk is read at once, with no warning of mixed types.)
        options: dict[str, Any] = {"na_filter": False, "low_memory": False}
        with pd.read_csv(path, usecols=[0], chunksize=1 << 18, **options) as reader:
            return sum(len(chunk) for chunk in reader)
    except (ValueError, UnicodeDecodeError, IndexError):  # (read again, and said, by the caller)
        return None


def write_table(frame: pd.DataFrame, path: Path, append: bool = False) -> None:
    """Write (or append) rows to CSV or Parquet, by the file's suffix."""
    path = Path(path)
    kind = _kind(path)
    if kind == "csv":
        frame.to_csv(path, mode="a" if append else "w", header=not append, index=False)
    elif kind == "parquet":
        if append:
            raise BadRequest("Parquet output is written whole; use ParquetWriter for chunks")
        frame.to_parquet(path, index=False)
    else:
        np.save(path, frame.to_numpy())


def _frame(array: np.ndarray) -> pd.DataFrame:
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise BadRequest(f"a .npy table must be 1-D or 2-D, not {array.ndim}-D")
    return pd.DataFrame(array)
