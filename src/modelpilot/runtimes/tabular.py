"""Signature pieces shared by the runtimes of tabular models (one 2-D input)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelpilot.errors import InvalidInput
from modelpilot.protocol.datatypes import datatype_of
from modelpilot.registry.signature import TensorSpec

INPUT = "input-0"


def input_spec(n_features: int | None, example: np.ndarray | None) -> TensorSpec:
    """The one input of a tabular model: ``[-1, n_features]``, FP64 unless the example says."""
    datatype = "FP64"
    if example is not None and example.dtype.kind in "iuf":
        datatype = datatype_of(example) if example.dtype.kind == "f" else "FP64"
    width = (
        n_features
        if n_features is not None
        else (example.shape[1] if example is not None and example.ndim == 2 else -1)
    )
    return TensorSpec(INPUT, datatype, (-1, int(width)))


def label_datatype(classes: np.ndarray) -> str:
    """Protocol datatype of class labels: strings are BYTES, integers INT64."""
    kind = classes.dtype.kind
    if kind in "USO":
        return "BYTES"
    if kind in "iu":
        return "INT64"
    if kind == "b":
        return "BOOL"
    return "FP64"


def check_example(example: np.ndarray | None, n_features: int | None) -> None:
    if example is None or n_features is None:
        return
    if example.ndim != 2 or example.shape[1] != n_features:
        raise InvalidInput(
            f"the reference data has shape {list(example.shape)} but the model takes "
            f"{n_features} features per row"
        )


def feature_names_for(
    model_names: Sequence[str] | None, given: Sequence[str] | None, n_features: int | None
) -> tuple[str, ...] | None:
    if model_names is not None:
        return tuple(str(n) for n in model_names)
    if given is not None and (n_features is None or len(given) == n_features):
        return tuple(str(n) for n in given)
    return None
