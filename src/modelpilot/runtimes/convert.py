"""scikit-learn, XGBoost and LightGBM to ONNX: conversion, a runtime that keeps the original's
signature, and the parity check that decides whether it serves.

ONNX Runtime answers a forest's single row in microseconds where scikit-learn needs about a
millisecond, but a converted model is only used after it agreed with the original on real (or
synthetic) rows: labels identical, every number within ``RTOL``/``ATOL``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.errors import InvalidInput, MissingExtra
from modelpilot.protocol.datatypes import datatype_of, numpy_dtype
from modelpilot.registry.signature import Signature
from modelpilot.runtimes.base import Batch, Runtime
from modelpilot.runtimes.onnx import OnnxRuntime

RTOL = 1e-4
ATOL = 1e-5


class ConversionError(Exception):
    """The model cannot be converted; the message says why."""


def sklearn_to_onnx(model: Any, n_features: int, dtype: type = np.float64) -> bytes:
    """The model as an ONNX graph taking ``[-1, n_features]`` of ``dtype``.

    Doubles keep scikit-learn's thresholds exactly; some operators (tree regressors in ONNX
    Runtime) only exist for floats, which is the fallback.
    """
    try:
        from skl2onnx import to_onnx
    except ImportError as exc:  # pragma: no cover - skl2onnx is a dependency
        raise ConversionError(f"skl2onnx is not installed: {exc}") from None
    sample: np.ndarray = np.zeros((1, n_features), dtype=dtype)
    options: dict[Any, Any] = {}
    if hasattr(model, "predict_proba"):
        # Probabilities as a plain tensor, not ZipMap's list of dicts.
        options = {id(model): {"zipmap": False}}
    try:
        onx = to_onnx(model, sample, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    except Exception as exc:
        raise ConversionError(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from None
    data: bytes = onx.SerializeToString()
    return data


def sklearn_columns_to_onnx(
    model: Any, names: Sequence[str], datatypes: Sequence[str], dtype: type = np.float64
) -> bytes:
    """A pipeline that takes text beside numbers as an ONNX graph with one input per feature,
    ``[-1, 1]`` each: strings for ``BYTES`` features, ``dtype`` for the others."""
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import (
            DoubleTensorType,
            FloatTensorType,
            StringTensorType,
        )
    except ImportError as exc:  # pragma: no cover - skl2onnx is a dependency
        raise ConversionError(f"skl2onnx is not installed: {exc}") from None
    number = DoubleTensorType if dtype == np.float64 else FloatTensorType
    types = [
        (name, StringTensorType([None, 1]) if kind == "BYTES" else number([None, 1]))
        for name, kind in zip(names, datatypes, strict=True)
    ]
    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else {}
    try:
        onx = convert_sklearn(
            model, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3}
        )
    except Exception as exc:
        raise ConversionError(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from None
    data: bytes = onx.SerializeToString()
    return data


def booster_to_onnx(runtime: Runtime, n_features: int) -> bytes:
    """An XGBoost or LightGBM booster as an ONNX graph taking ``[-1, n_features]`` floats.

    The tree operators of ONNX work in single precision, as both libraries do internally.
    """
    try:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        raise MissingExtra("onnxmltools", runtime.flavor) from None
    booster = getattr(runtime, "booster", None)
    initial = [("input", FloatTensorType([None, n_features]))]
    try:
        if runtime.flavor == "xgboost":
            onx = onnxmltools.convert_xgboost(booster, initial_types=initial, target_opset=15)
        else:
            onx = onnxmltools.convert_lightgbm(
                booster, initial_types=initial, target_opset=15, zipmap=False
            )
    except Exception as exc:
        message = f"onnxmltools cannot convert this {runtime.flavor} model: {exc}"
        raise ConversionError(message) from None
    data: bytes = onx.SerializeToString()
    return data


Converter = Callable[[type], bytes]


def converter_for(runtime: Runtime, n_features: int) -> tuple[Converter, list[type]] | None:
    """How to convert ``runtime`` to ONNX, and the input precisions to try, in order.

    Doubles first where the converter has them (exact for linear models); then floats, which
    is what tree ensembles compare internally, so they agree exactly in float.
    """
    if runtime.flavor == "sklearn":
        model = getattr(runtime, "model", None)
        signature = runtime.signature
        if signature.feature_datatypes and signature.feature_names:
            names, kinds = signature.feature_names, signature.feature_datatypes
            return (lambda dtype: sklearn_columns_to_onnx(model, names, kinds, dtype)), [
                np.float64,
                np.float32,
            ]
        return (lambda dtype: sklearn_to_onnx(model, n_features, dtype)), [np.float64, np.float32]
    if runtime.flavor in ("xgboost", "lightgbm"):
        return (lambda dtype: booster_to_onnx(runtime, n_features)), [np.float32]
    return None


class ConvertedRuntime(Runtime):
    """An ONNX graph serving under the original model's signature and output names."""

    flavor = "onnx"

    def __init__(self, session: OnnxRuntime, signature: Signature) -> None:
        self.session = session
        self.signature = signature
        self.fallback: Runtime | None = None
        """Runs batches with missing values, where the graph does not treat them alike."""
        onnx_inputs = list(session.signature.inputs)
        onnx_outputs = [spec.name for spec in session.signature.outputs]
        self._columns: list[tuple[str, np.dtype[Any] | None]] = []
        """Text beside numbers: each feature's graph input, and its dtype (None for text)."""
        if signature.feature_datatypes:
            if [spec.name for spec in onnx_inputs] != list(signature.feature_names or ()):
                raise ConversionError("the converted graph does not take one input per feature")
            self._columns = [
                (spec.name, None if spec.datatype == "BYTES" else _dtype(spec.datatype))
                for spec in onnx_inputs
            ]
        elif len(onnx_inputs) != 1 or not signature.inputs:
            raise ConversionError("the converted graph does not take one tabular input")
        self._input = onnx_inputs[0]
        self._input_dtype = _dtype(self._input.datatype)
        # skl2onnx names outputs label/probabilities (classifiers) or variable (regressors).
        names = [spec.name for spec in signature.outputs]
        if len(onnx_outputs) < len(names):
            raise ConversionError(f"the converted graph gives {onnx_outputs}, not {names}")
        self._outputs = dict(zip(names, onnx_outputs, strict=False))
        self._dtypes = {spec.name: spec.datatype for spec in signature.outputs}
        # Regressors come out of ONNX as [n, 1]; the original gave [n].
        self._flat = {spec.name: len(spec.shape) == 1 for spec in signature.outputs}

    @classmethod
    def load(cls, path: Any, signature: Signature | None = None, **options: Any) -> Runtime:
        raise NotImplementedError("built by the engine from a converted graph")

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        x = next(iter(batch.values()))
        if self._columns:
            feed = self._feed(x)
            if feed is None:
                return self.fallback.predict(batch, outputs)  # type: ignore[union-attr]
        else:
            if self.fallback is not None and x.dtype.kind == "f" and np.isnan(x).any():
                return self.fallback.predict(batch, outputs)
            if x.dtype != self._input_dtype:
                x = x.astype(self._input_dtype)
            feed = {self._input.name: x}
        wanted = list(outputs) or list(self._outputs)
        raw = self.session.predict(feed, [self._outputs[n] for n in wanted])
        result = {}
        for name in wanted:
            value = raw[self._outputs[name]]
            value = _as_declared(value, self._dtypes[name])
            if value.ndim == 2 and value.shape[1] == 1 and self._flat[name]:
                value = value[:, 0]
            if name == "predict_proba":
                # A float32 graph's sums can come out a rounding past 1 (1.0000001), which no
                # probability is; clipped in place, as the array is the graph's own.
                np.clip(value, 0.0, 1.0, out=value)
            result[name] = value
        return result

    def _feed(self, rows: np.ndarray) -> dict[str, np.ndarray] | None:
        """Rows of text beside numbers as the graph's inputs, a column each; None if the
        rows have missing numbers or text and a fallback is to take them."""
        feed = {}
        for position, (name, dtype) in enumerate(self._columns):
            column = rows[:, position : position + 1]
            if dtype is None:
                # A string tensor holds no missing value (NaN or None, as the model knows
                # it: serving.inputs.missing_text): missing text is the original's to answer.
                if self.fallback is not None and any(v is None or v != v for v in column.flat):
                    return None
                feed[name] = column
                continue
            numbers = column.astype(dtype)
            if self.fallback is not None and np.isnan(numbers).any():
                return None
            feed[name] = numbers
        return feed

    @property
    def memory_bytes(self) -> int:
        extra = self.fallback.memory_bytes if self.fallback is not None else 0
        return self.session.memory_bytes + extra

    def close(self) -> None:
        self.session.close()
        if self.fallback is not None:
            self.fallback.close()


@dataclass(frozen=True, slots=True)
class Parity:
    """How a converted model compared with its original on a sample."""

    ok: bool
    rows: int
    max_abs_diff: float
    label_mismatches: int
    reason: str = ""


def check_parity(original: Runtime, converted: Runtime, sample: np.ndarray) -> Parity:
    """Run both on ``sample``: labels must match exactly, numbers within RTOL/ATOL."""
    name = original.signature.inputs[0].name
    try:
        want = original.predict({name: sample})
        got = converted.predict({name: sample})
    except Exception as exc:
        return Parity(False, len(sample), float("inf"), 0, f"prediction failed: {exc}")
    worst = 0.0
    mismatches = 0
    for key, expected in want.items():
        actual = got.get(key)
        if actual is None or actual.shape != expected.shape:
            shape = None if actual is None else actual.shape
            return Parity(
                False,
                len(sample),
                float("inf"),
                0,
                f"output {key!r} has shape {shape}, expected {expected.shape}",
            )
        if _datatype(actual) != _datatype(expected):
            # Compared as they are answered: cast back to the original's dtype, the int64 0
            # and 1 of a classifier of booleans equalled its False and True, and passed.
            return Parity(
                False,
                len(sample),
                float("inf"),
                0,
                f"output {key!r} is {_datatype(actual)}, the original's {_datatype(expected)}",
            )
        if expected.dtype.kind in "fc":
            diff = np.abs(actual.astype(np.float64) - expected)
            worst = max(worst, float(diff.max(initial=0.0)))
            if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
                return Parity(
                    False,
                    len(sample),
                    worst,
                    mismatches,
                    f"output {key!r} differs by up to {worst:.3g}",
                )
        else:
            mismatches += int(np.sum(actual != expected))
            if mismatches:
                return Parity(
                    False,
                    len(sample),
                    worst,
                    mismatches,
                    f"{mismatches} of {len(sample)} labels differ",
                )
    return Parity(True, len(sample), worst, 0)


def _as_declared(value: np.ndarray, datatype: str) -> np.ndarray:
    """A graph's output in the dtype of the original's ``datatype``, as the original answers.

    skl2onnx gives a classifier of booleans int64 labels, 0 and 1: passed on as they were,
    they went out as INT64 under a signature that says BOOL, and the monitor, comparing
    "1" with the classes "True" and "False", counted every prediction as no class of the
    model. Text stays as the graph gives it (an object array of ``str``, as the original's)."""
    if datatype == "BYTES":
        return value
    return value.astype(numpy_dtype(datatype), copy=False)


def _datatype(array: np.ndarray) -> str:
    """The protocol datatype ``array`` is answered as (its dtype, where it has none)."""
    try:
        return datatype_of(array)
    except InvalidInput:
        return str(array.dtype)


def _dtype(datatype: str) -> np.dtype[Any]:
    return np.dtype(np.float32 if datatype == "FP32" else np.float64)
