"""``modelpilot predict``: offline batch scoring of a data file, in chunks, with progress."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from modelpilot.cli.common import (
    ArtifactsOption,
    RegistryOption,
    err,
    make_settings,
    progress_bar,
)
from modelpilot.errors import InvalidInput
from modelpilot.protocol.datatypes import datatype_of, numpy_dtype
from modelpilot.protocol.types import InferenceRequest, Tensor
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.signature import Signature
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.inputs import missing_values
from modelpilot.tabular import count_rows, has_names, iter_table


def predict(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="NAME, NAME:VERSION or NAME@ALIAS.")
    ],
    input_file: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Rows to score: CSV, Parquet or .npy.")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write predictions (.csv, .parquet or .npy). "
            "[default: beside INPUT, its extension replaced: rows.csv gives rows.predictions.csv]",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per model call.")] = 10_000,
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Score every row of INPUT with a registered model and write the outputs to a file.

    Columns are matched to the model's features by name when both have names; a .npy file's
    columns are taken in order. Classifiers get a `predict` column and one `predict_proba_<class>`
    column per class. The output appears only once every row is scored: a run stopped by a bad
    row or Ctrl-C leaves no half-written file (and an earlier output as it was). An input
    without rows (a header alone, an empty partition) gives an output of the same columns
    without rows.
    """
    ref = ModelRef.parse(model)
    target = output or input_file.with_name(input_file.stem + ".predictions.csv")
    if target.resolve() == input_file.resolve():
        raise InvalidInput("--output must not be the input file")
    settings = make_settings(registry=registry, artifacts=artifacts)
    reg = Registry.open(settings.registry, settings.artifacts)
    try:
        rows, seconds, version = asyncio.run(
            _score(reg, settings, ref, input_file, target, batch_size)
        )
    finally:
        reg.close()
    rate = rows / seconds if seconds > 0 else float("inf")
    err.print(
        f"Scored {rows:,} rows with {version} in {seconds:.2f} s ({rate:,.0f} rows/s) -> {target}",
        highlight=False,
    )


async def _score(
    registry: Registry, settings: Any, ref: ModelRef, source: Path, target: Path, chunk: int
) -> tuple[int, float, str]:
    engine = InferenceEngine(registry, settings, [ref])
    await engine.start()
    writer = _Writer(target)
    started = time.perf_counter()
    done = 0
    try:
        loaded = await engine.get_model(ref.name)
        version = str(loaded.version)
        signature = loaded.version.signature
        total = count_rows(source)
        with progress_bar() as progress:
            task = progress.add_task(f"scoring with {version}", total=total)
            for frame in iter_table(source, chunk, signature.text_features):
                tensors = _tensors(signature, frame, done)  # checks the columns of no rows too
                if not len(frame):
                    continue
                request = InferenceRequest(inputs=tensors)
                response = await engine.infer(ref.name, request, transport="cli")
                writer.write(_outputs(signature, response.outputs))
                done += len(frame)
                progress.update(task, advance=len(frame))
        if not done:  # a header alone, or an empty partition: an output without rows
            writer.write(_outputs(signature, _no_rows(signature)))
        writer.close()
    except BaseException:
        writer.discard()
        raise
    finally:
        await engine.stop()
    return done, time.perf_counter() - started, version


def _tensors(signature: Signature, frame: pd.DataFrame, first_row: int) -> list[Tensor]:
    """``frame`` as the model's inputs; ``first_row`` is its first row's index in the file."""
    names = signature.feature_names
    if names and has_names(frame):
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise InvalidInput(
                f"the input lacks the model's features {missing}; its columns are "
                f"{list(frame.columns)}"
            )
        frame = frame[list(names)]
    if signature.feature_datatypes:
        return _by_feature(signature, frame, first_row)
    array = _numbers(signature, frame, first_row)
    name = signature.inputs[0].name if signature.inputs else "input-0"
    return [Tensor(name, datatype_of(array), array.shape, array)]


def _by_feature(signature: Signature, frame: pd.DataFrame, first_row: int) -> list[Tensor]:
    """A table of numbers beside text, as one tensor per feature (each in its datatype)."""
    if not has_names(frame):
        raise InvalidInput(
            "the model takes text features, which are sent by name: give the input a header "
            f"naming its columns {list(signature.feature_names or ())} (CSV or Parquet)"
        )
    tensors = []
    for name, kind in zip(frame.columns, signature.feature_datatypes or (), strict=True):
        if kind != "BYTES":
            data = _numbers(signature, frame[[name]], first_row)[:, 0]
            tensors.append(Tensor(name, datatype_of(data), data.shape, data))
            continue
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values):
            # Parquet keeps its types: a number here is no text the model was fitted on
            # (2134 is not "02134"), and would be an unknown category, silently.
            raise InvalidInput(
                f"column {name!r} holds numbers ({values.dtype}), and the model takes text "
                "there: store it as text (strings), as the model was fitted on it"
            )
        empty = values.isna().to_numpy()
        if empty.any():
            at = int(np.argmax(empty))
            raise InvalidInput(
                f"data row {first_row + at + 1}, column {name!r} is empty, and the model takes "
                "text there: fill it in or remove that row"
            )
        data = values.astype(str).to_numpy(dtype=object)
        tensors.append(Tensor(name, "BYTES", data.shape, data))
    return tensors


def _numbers(signature: Signature, frame: pd.DataFrame, first_row: int) -> np.ndarray:
    """``frame``'s columns of numbers as one array, or InvalidInput naming a bad cell."""
    nullable = any(isinstance(t, pd.api.extensions.ExtensionDtype) for t in frame.dtypes)
    if nullable and all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        # Parquet's nullable integers (Int64): their NA is a missing value, as NaN is.
        array = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        array = frame.to_numpy()
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            problem = _not_numeric(frame, first_row) or f"non-numeric input: {exc}"
            raise InvalidInput(problem) from None
    # The engine would refuse them too, counting rows from 0 in this chunk, not in the file.
    empty = missing_values(signature, array)
    if empty is not None:
        (row, col), count = empty
        raise InvalidInput(
            f"data row {first_row + row + 1}, column {frame.columns[col]!r} is empty or "
            "not finite, and this model cannot take missing values: impute them or remove "
            f"those rows ({count:,} such cell(s) in rows {first_row + 1:,}-"
            f"{first_row + len(frame):,})"
        )
    return array


def _not_numeric(frame: pd.DataFrame, first_row: int) -> str | None:
    """Where the first value that is not a number is, as a user finds it in the file."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind != "O":
            continue
        bad = pd.to_numeric(values, errors="coerce").isna() & values.notna()
        if bad.any():
            at = int(np.argmax(bad.to_numpy()))
            return (
                f"data row {first_row + at + 1}, column {column!r}: {values.iloc[at]!r} is "
                "not a number; fix or remove that row"
            )
    return None


def _no_rows(signature: Signature) -> list[Tensor]:
    """The model's outputs for no rows, from its signature (the model takes no empty call).

    A trailing dimension the signature leaves open (-1) counts as one column."""
    tensors = []
    for spec in signature.outputs:
        shape = (0, *(d if d > 0 else 1 for d in spec.shape[1:]))
        data = np.empty(shape, dtype=numpy_dtype(spec.datatype))
        tensors.append(Tensor(spec.name, spec.datatype, shape, data))
    return tensors


def _outputs(signature: Signature, tensors: list[Tensor]) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    classes = signature.extra.get("classes")
    for tensor in tensors:
        data = tensor.data
        if data.dtype.kind == "O":
            data = np.array(
                [v.decode() if isinstance(v, bytes) else v for v in data.ravel()], dtype=object
            ).reshape(data.shape)
        if data.ndim == 1:
            columns[tensor.name] = data
            continue
        flat = data.reshape(data.shape[0], math.prod(data.shape[1:]))  # -1 fails on no rows
        labels = (
            [str(c) for c in classes]
            if tensor.name == "predict_proba" and classes and len(classes) == flat.shape[1]
            else [str(i) for i in range(flat.shape[1])]
        )
        for i, label in enumerate(labels):
            columns[f"{tensor.name}_{label}"] = flat[:, i]
    return pd.DataFrame(columns)


class _Writer:
    """Appends chunks to CSV or Parquet as they come; .npy is written once at the end.

    Into a hidden file beside ``path``, which ``close`` renames to ``path`` and ``discard``
    removes: ``path`` is either the whole output or untouched."""

    def __init__(self, target: Path) -> None:
        self.target = target
        suffix = target.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq", ".npy"):
            raise InvalidInput(f"cannot write {target.name}: use .csv, .parquet or .npy")
        self.path = target.with_name(f".{target.name}.partial")
        self.kind = "parquet" if suffix in (".parquet", ".pq") else suffix[1:]
        self._first = True
        self._parquet: Any = None
        self._frames: list[pd.DataFrame] = []

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "csv":
            frame.to_csv(
                self.path, mode="w" if self._first else "a", header=self._first, index=False
            )
        elif self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table)
        else:
            self._frames.append(frame)
        self._first = False

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self.kind == "npy" and self._frames:
            with self.path.open("wb") as file:  # np.save would add .npy to the name
                np.save(file, _npy(pd.concat(self._frames, ignore_index=True)))
        if self.path.exists():
            self.path.replace(self.target)

    def discard(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self.path.unlink(missing_ok=True)


def _npy(frame: pd.DataFrame) -> np.ndarray:
    """The outputs as an array ``np.load`` reads without unpickling: numbers alone as one
    2-D array; beside text (string classes), a record per row with a field per column."""
    if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        return frame.to_numpy()
    fields = {
        name: column.astype(str) if column.dtype.kind == "O" else column
        for name, column in frame.items()
    }
    return pd.DataFrame(fields).to_records(index=False, column_dtypes=_unicode(fields))


def _unicode(fields: dict[Any, pd.Series]) -> dict[Any, str]:
    """Fixed-width text fields for the columns of text (objects cannot be saved unpickled)."""
    widths = {}
    for name, column in fields.items():
        if column.dtype.kind == "O":
            widths[name] = f"<U{max(1, int(column.str.len().max() or 1))}"
    return widths


def install(app: typer.Typer) -> None:
    app.command()(predict)
