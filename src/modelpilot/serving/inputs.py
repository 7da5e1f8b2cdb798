"""Fitting request tensors to a model's signature, and model outputs back into tensors.

Every transport hands the engine decoded tensors; this is where they are checked against what
the model takes, once, with messages that say what to send instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from modelpilot.errors import InvalidInput, NextCall, quoted
from modelpilot.protocol.datatypes import datatype_of
from modelpilot.protocol.rows import RecordField
from modelpilot.protocol.types import RequestedOutput, Tensor
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.runtimes.base import Batch
from modelpilot.serving.casts import as_bytes, cast

MISSING_TEXT = "missing_text"
"""The key of ``Signature.extra`` that is true when the model predicts on rows whose text
features are missing: a pipeline that imputes them, an encoder that takes a missing value for
a category. Registration finds it out by asking the model, as ``allow_nan`` for numbers."""

MISSING_TEXT_AS_NONE = "missing_text_as_none"
"""The key of ``Signature.extra`` that is true when the model knows a missing text as None
rather than NaN (see ``missing_text``)."""


def takes_missing_text(signature: Signature) -> bool:
    """Whether a null may be sent for the model's text features (see ``MISSING_TEXT``)."""
    return bool(signature.extra.get(MISSING_TEXT))


def missing_text(signature: Signature) -> float | None:
    """What a missing text reaches the model as: NaN, as pandas reads an empty cell of a
    column of text (in which the model's imputer finds it, ``SimpleImputer``'s default
    ``missing_values=np.nan``), unless registration found that the model was fitted on None
    instead (``MISSING_TEXT_AS_NONE``: a DataFrame of records, or a Parquet file read by
    pandas 2). None, given to a model fitted on NaN, passed its imputer as a category it
    never saw."""
    return None if signature.extra.get(MISSING_TEXT_AS_NONE) else math.nan


def column_inputs(signature: Signature) -> tuple[TensorSpec, ...]:
    """The inputs of a model that declares one named input per column of a table, each of one
    value per row (shape ``[-1]`` or ``[-1, 1]``), as a ``.py`` model may: a table's columns
    of those names fill them. Empty for tabular models (``feature_inputs`` is theirs) and for
    inputs of other shapes (an image is no column)."""
    if signature.is_tabular or not signature.inputs:
        return ()
    if all(_one_per_row(spec.shape) for spec in signature.inputs):
        return signature.inputs
    return ()


def column_names(signature: Signature) -> tuple[str, ...]:
    """The columns of a table the model takes by name: its features, or the inputs it
    declares one per column (``column_inputs``)."""
    return signature.feature_names or tuple(s.name for s in column_inputs(signature))


def declared_text(signature: Signature) -> tuple[str, ...]:
    """The inputs a model declares one per column as text (``BYTES``): columns a CSV file
    is read as text for."""
    return tuple(s.name for s in column_inputs(signature) if s.datatype == "BYTES")


def _one_per_row(shape: tuple[int, ...]) -> bool:
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def assemble_batch(signature: Signature, inputs: Sequence[Tensor]) -> Batch:
    """Turn request tensors into the batch the runtime takes, or raise ``InvalidInput``."""
    if not inputs:
        raise InvalidInput("the request has no inputs; send at least one input tensor")
    if len(inputs) > 1:
        _once_each("input", [tensor.name for tensor in inputs])
    if signature.is_tabular:
        return {signature.inputs[0].name: _tabular(signature, inputs)}
    return _named(signature, inputs)


def _tabular(signature: Signature, inputs: Sequence[Tensor]) -> np.ndarray:
    spec = signature.inputs[0]
    width = signature.n_features
    if len(inputs) == 1 and (
        inputs[0].name == spec.name
        or not signature.feature_names
        or (
            inputs[0].name not in signature.feature_names
            and not isinstance(inputs[0], RecordField)  # a feature of records: one unknown
        )
    ):
        tensor = inputs[0]
        array = tensor.data
        if array.ndim == 1 and width is not None and array.size == width:
            array = array.reshape(1, width)
        elif array.ndim == 1 and width == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise InvalidInput(
                f"input {quoted(tensor.name)} has shape {list(tensor.shape)}; the model takes a "
                f"2-D tensor [rows, {width if width is not None else 'features'}]"
            )
        if width is not None and array.shape[1] != width:
            raise InvalidInput(
                f"input {quoted(tensor.name)} has {array.shape[1]} features per row; the model "
                f"takes {width}" + _names_hint(signature)
            )
        if signature.feature_datatypes:
            array = _mixed(signature, list(array.T))
        else:
            array = _numbers_of_table(signature, tensor.name, array)
    else:
        columns = _feature_columns(signature, inputs)
        if signature.feature_datatypes:
            array = _mixed(signature, columns)
        else:
            names = signature.feature_names or ()
            array = np.column_stack(
                [_numbers_of_table(signature, n, c) for n, c in zip(names, columns, strict=True)]
            )
    if array.shape[0] == 0:
        raise InvalidInput("the input has no rows; send at least one row")
    _check_nan(signature, array)
    return array


def _numbers_of_table(signature: Signature, name: str, array: np.ndarray) -> np.ndarray:
    """``cast`` to a table of numbers; text refused there says how the version may have
    come to take numbers where its model was fitted on text."""
    try:
        return cast(name, array, signature.inputs[0].datatype)
    except InvalidInput as exc:
        if not signature.feature_names or not any(isinstance(v, str | bytes) for v in array.flat):
            raise
        raise InvalidInput(
            f"{exc.message}. If the model was fitted on text there, this version was "
            "registered as taking numbers only (by a release before text features were "
            "served, or with a reference that read them as numbers): register the model again "
            "with its training data as --reference, to serve its text"
        ) from None


def _feature_columns(signature: Signature, inputs: Sequence[Tensor]) -> list[np.ndarray]:
    """One tensor per feature, by name (MLServer's and Evidently's column-wise layout), as
    the model's columns in its order."""
    names = signature.feature_names
    spec = signature.inputs[0]
    if not names:
        raise InvalidInput(
            f"the model takes a single input {quoted(spec.name)} of shape [rows, features]; it "
            f"has no feature names, so it cannot take {len(inputs)} separate inputs"
        )
    by_name = {t.name: t for t in inputs}
    missing = [n for n in names if n not in by_name]
    extra = [n for n in by_name if n not in names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing features [{_first(missing)}]")
        if extra:
            parts.append(f"unknown features [{_first([quoted(n) for n in extra], quote=False)}]")
        raise InvalidInput("; ".join(parts) + f"; the model takes [{_first(names)}]")
    rows = None
    columns = []
    for name in names:
        data = by_name[name].data
        if data.ndim == 2 and data.shape[1] == 1:
            data = data[:, 0]
        if data.ndim != 1:
            raise InvalidInput(
                f"feature {quoted(name)} has shape {list(data.shape)}; send one value per row, "
                "shape [rows] or [rows, 1]"
            )
        if rows is None:
            rows = data.shape[0]
        elif data.shape[0] != rows:
            raise InvalidInput(
                f"feature {quoted(name)} has {data.shape[0]} rows but others have {rows}; "
                "every feature needs one value per row"
            )
        columns.append(data)
    return columns


def _mixed(signature: Signature, columns: Sequence[np.ndarray]) -> np.ndarray:
    """Rows of numbers beside text, as the model takes them: an object array whose numeric
    features hold floats (NaN for missing, where the model takes it) and text features str."""
    names = signature.feature_names or ()
    kinds = signature.feature_datatypes or ()
    rows = np.empty((columns[0].shape[0] if columns else 0, len(columns)), dtype=object)
    for position, (name, kind, column) in enumerate(zip(names, kinds, columns, strict=True)):
        if kind == "BYTES":
            rows[:, position] = _texts(name, column, signature)
            continue
        if column.dtype.kind in "OSU":
            column = _numbers_in_text(name, column)
        values = cast(name, column, "FP64")
        _check_nan(signature, values, name)
        rows[:, position] = values
    return rows


def _texts(name: str, column: np.ndarray, signature: Signature) -> np.ndarray:
    """A text feature's values as str; numbers are refused, not turned into text that no
    category of the model's would match. A null (None, or NaN where a column of nulls alone
    came as numbers) is the model's own missing text (``missing_text``) where it copes with
    one, and refused for the others, whose failure on it would not say which feature was
    missing."""
    missing_ok = takes_missing_text(signature)
    missing = missing_text(signature)
    out = np.empty(column.shape[0], dtype=object)
    for i, value in enumerate(column.tolist()):
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError:
                raise InvalidInput(
                    f"feature {quoted(name)}, row {i}: the bytes are not UTF-8 text"
                ) from None
        elif _is_null(value):
            if not missing_ok:
                raise InvalidInput(
                    f"feature {quoted(name)} is missing (null) in row {i}, and the model takes "
                    "text there"
                )
            value = missing
        elif not isinstance(value, str):
            raise InvalidInput(
                f"feature {quoted(name)} takes text, but row {i} holds {quoted(value)}; send a "
                f"string (BYTES), as the model saw in its reference"
            )
        out[i] = value
    return out


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _refuse_missing_text(name: str, array: np.ndarray) -> None:
    """InvalidInput if a ``BYTES`` input of a model of named inputs holds a null: it would
    reach the model as the text "None" (or a NaN where it takes text), which it never
    declared it takes."""
    if array.dtype.kind not in "Of":
        return
    for i, value in enumerate(array.ravel().tolist()):
        if _is_null(value):
            raise InvalidInput(
                f"input {quoted(name)} is missing (null) in row {i}, and the model takes text there"
            )


def _numbers_in_text(name: str, column: np.ndarray) -> np.ndarray:
    """A numeric feature sent as text (in a table of rows of both kinds), as floats."""
    out = np.empty(column.shape[0], dtype=np.float64)
    for i, value in enumerate(column.tolist()):
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        elif value is None:  # null, as in a column of numbers alone
            value = math.nan
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"feature {quoted(name)} takes numbers, but row {i} holds {quoted(value)}; send "
                "a number"
            ) from None
    return out


def _named(signature: Signature, inputs: Sequence[Tensor]) -> Batch:
    by_name = {t.name: t for t in inputs}
    expected = [s.name for s in signature.inputs]
    if len(signature.inputs) == 1 and len(inputs) == 1:
        # A lone input may go by any name: clients often call it INPUT0 or input-0.
        by_name = {expected[0]: inputs[0]}
    missing = [n for n in expected if n not in by_name]
    extra = [n for n in by_name if n not in expected]
    if missing or extra:
        raise InvalidInput(
            f"the model takes inputs {expected}; "
            + "; ".join(
                p
                for p in (
                    f"missing {missing}" if missing else "",
                    f"unknown {quoted(extra)}" if extra else "",
                )
                if p
            )
        )
    batch: Batch = {}
    rows: int | None = None
    for spec in signature.inputs:
        tensor = by_name[spec.name]
        array = _check_shape(spec, tensor)
        if spec.datatype == "BYTES":
            _refuse_missing_text(spec.name, array)
        array = cast(spec.name, array, spec.datatype)
        if array.ndim and rows is not None and array.shape[0] != rows:
            raise InvalidInput(
                f"input {quoted(spec.name)} has {array.shape[0]} rows but others have {rows}"
            )
        rows = array.shape[0] if array.ndim else rows
        if array.size == 0:
            raise InvalidInput(f"input {quoted(spec.name)} is empty; send at least one row")
        if spec.datatype in ("FP16", "FP32", "FP64") and not signature.allow_nan:
            _check_nan(signature, array, spec.name)
        batch[spec.name] = array
    return batch


def _check_shape(spec: TensorSpec, tensor: Tensor) -> np.ndarray:
    array = tensor.data
    if len(spec.shape) != array.ndim and len(spec.shape) == array.ndim + 1:
        # A single sample without its batch dimension.
        array = array.reshape((1, *array.shape))
    if len(spec.shape) != array.ndim or any(
        want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
    ):
        raise InvalidInput(
            f"input {quoted(spec.name)} has shape {list(tensor.shape)}; the model takes "
            f"{list(spec.shape)} (-1 means any size)"
        )
    return array


def missing_values(signature: Signature, array: np.ndarray) -> tuple[tuple[int, ...], int] | None:
    """Where the first NaN or infinite value of ``array`` is, and how many there are, if the
    model cannot take them (None if it can, or there are none)."""
    if signature.allow_nan or array.dtype.kind != "f":
        return None
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0]), int(bad.sum())


def _check_nan(signature: Signature, array: np.ndarray, name: str | None = None) -> None:
    missing = missing_values(signature, array)
    if missing is None:
        return
    where, count = missing
    column = ""
    if array.ndim == 2:
        col = where[1]
        label = signature.feature_names[col] if signature.feature_names else f"column {col}"
        column = f", feature {label!r}"
    raise InvalidInput(
        f"input{' ' + repr(name) if name else ''} holds {count} NaN or infinite "
        f"value(s) (first at row {where[0]}{column}); this model cannot take missing "
        "values: impute them before sending"
    )


def _names_hint(signature: Signature) -> str:
    if signature.feature_names:
        return f" ({_first(signature.feature_names, quote=False)})"
    return ""


NAMES_SHOWN = 10
"""Feature names an error message lists, the first ones: a 200-feature model's wrong-width
error listed all 200 names (1.3 KB)."""


def _first(names: Sequence[str], quote: bool = True) -> str:
    """The first ``NAMES_SHOWN`` of ``names`` (each its ``repr``, with ``quote``), and how
    many more there are: "'f0', 'f1', [...], 'f9' and 190 more"."""
    shown = [repr(n) if quote else n for n in names[:NAMES_SHOWN]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def requested_outputs(signature: Signature, requested: Sequence[RequestedOutput]) -> list[str]:
    """Names of the outputs to compute: the ones asked for, or all of them."""
    available = [s.name for s in signature.outputs]
    if not requested:
        return available
    names = [r.name for r in requested]
    classified = [r.name for r in requested if "classification" in r.parameters]
    if classified:
        # Triton's classification extension answers the top classes as text instead of the
        # tensor; answering the tensor would hand the client another shape than it expects.
        raise InvalidInput(
            f"output(s) {quoted(classified)} ask for classification, an extension this server "
            "does not offer; ask for predict_proba and take the top classes from it, or for "
            "predict. The server's metadata lists the extensions it offers"
        ).advising(NextCall("extensions"))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InvalidInput(f"unknown output(s) {quoted(unknown)}; the model gives {available}")
    if len(names) > 1:
        _once_each("output", names)
    return names


def _once_each(what: str, names: Sequence[str]) -> None:
    """InvalidInput if a name is given twice (which of the two would count?)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"{what} {quoted(name)} is given more than once; give each once")
        seen.add(name)


def to_tensors(arrays: dict[str, np.ndarray], names: Sequence[str]) -> list[Tensor]:
    """Model outputs as protocol tensors, in the order asked for."""
    tensors = []
    for name in names:
        array = np.asarray(arrays[name])
        if array.dtype.kind == "U":
            array = np.array([s.encode() for s in array.ravel()], dtype=object).reshape(array.shape)
        elif array.dtype.kind == "O":
            array = as_bytes(array)
        tensors.append(Tensor(name, datatype_of(array), tuple(array.shape), array))
    return tensors
