"""Reading and writing tabular data files: CSV, Parquet and NumPy ``.npy``, whole or in chunks."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelpilot.errors import BadRequest

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
    if suffix == ".csv" or path.name.lower().endswith(".csv.gz"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".npy":
        return "npy"
    raise BadRequest(
        f"cannot read {path.name}: use a CSV (.csv, with a header row), Parquet (.parquet) or "
        "NumPy (.npy) file"
    )


def _exists(path: Path) -> None:
    if not path.is_file():
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


def read_table(
    path: Path, max_rows: int | None = None, text_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """The whole table (or its first ``max_rows``); .npy files get positional column names.
    A CSV's ``text_columns`` are read as text, as by ``iter_table``."""
    path = Path(path)
    kind = _kind(path)
    _exists(path)
    with _reading(path, kind):
        if kind == "csv":
            frame: pd.DataFrame = pd.read_csv(path, nrows=max_rows, **_as_text(path, text_columns))
            return frame
        if kind == "parquet":
            frame = pd.read_parquet(path)
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
    _exists(path)
    with _reading(path, kind):  # (what the caller does with each chunk is not inside)
        if kind == "csv":
            text = _as_text(path, text_columns)
            with pd.read_csv(path, chunksize=chunk_rows, **text) as reader:
                yield from reader
        elif kind == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(path) as file:
                for batch in file.iter_batches(batch_size=chunk_rows):
                    yield batch.to_pandas()
        else:
            array = np.load(path, allow_pickle=False, mmap_mode="r")
            for start in range(0, len(array), chunk_rows):
                yield _frame(np.asarray(array[start : start + chunk_rows]))


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
    """Number of data rows, cheaply where the format allows (for progress bars)."""
    path = Path(path)
    kind = _kind(path)
    _exists(path)
    with _reading(path, kind):
        if kind == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if kind == "npy":
            return int(np.load(path, allow_pickle=False, mmap_mode="r").shape[0])
    if path.suffix.lower() == ".gz":
        return None
    if path.stat().st_size == 0:
        return 0
    with path.open("rb") as file:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
        file.seek(-1, 2)
        ends_with_newline = file.read(1) == b"\n"
    return max(0, lines - 1 + (0 if ends_with_newline else 1))


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
