"""Features of text in a tabular model's signature: each feature keeps its own datatype
(its one input then a ``BYTES`` tensor of rows), as its reference data or the model itself
says, where its flavor takes such rows."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from modelpilot.errors import InvalidInput
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.runtimes.base import Runtime
from modelpilot.serving.reference_rows import column_datatype
from modelpilot.tabular import has_names


def with_text_features(runtime: Runtime, signature: Signature, frame: pd.DataFrame) -> Signature:
    """``signature`` for a reference whose features are not all numbers: each feature then
    keeps its own datatype, if the model's flavor takes such rows; else InvalidInput."""
    kinds = tuple(column_datatype(frame[column]) for column in frame.columns)
    text = [str(c) for c, kind in zip(frame.columns, kinds, strict=True) if kind != "FP64"]
    if not text:
        return signature
    if not runtime.takes_text and runtime.flavor == "python":
        raise InvalidInput(_undeclared_text(text, frame, kinds))
    if not runtime.takes_text:
        raise InvalidInput(
            f"the features {text} of the reference data are text, but the model ({runtime.flavor}) "
            f"is served one {signature.inputs[0].datatype} tensor of all its features, which "
            "cannot carry them. Encode them as numbers before the model (for example with an "
            "OrdinalEncoder outside its pipeline), or leave them out of the reference if the "
            "model does not take them"
        )
    if not has_names(frame):
        raise InvalidInput(
            f"the reference data has text in columns {text} but no column names; a model that "
            "takes text is sent its features by name: give the reference a header (CSV, Parquet)"
        )
    return _with_kinds(signature, tuple(str(c) for c in frame.columns), kinds)


def _undeclared_text(text: list[str], frame: pd.DataFrame, kinds: tuple[str, ...]) -> str:
    """What to tell the owner of a ``.py`` model without a signature whose reference has
    text: the signature to declare, made from the reference's own columns."""
    inputs = ", ".join(
        f'{{"name": "{c}", "datatype": "{k}", "shape": [-1]}}'
        for c, k in zip(frame.columns, kinds, strict=True)
    )
    return (
        f"the features {text} of the reference data are text, but a .py model that declares "
        "no signature is given one array of numbers (FP64) of all its features, which cannot "
        "carry them. Declare its inputs, one per feature and text as BYTES, in a `signature` "
        f'attribute of its class: signature = {{"inputs": [{inputs}], "outputs": [{{"name": '
        '"predict", "datatype": "FP64", "shape": [-1]}]} (the output\'s datatype "BYTES" if it '
        "answers labels of text); its predict() is then given a dict of one array per input"
    )


def with_text_of_the_model(runtime: Runtime, signature: Signature) -> Signature:
    """``signature`` for a model registered without reference data that says itself which of
    its features are text (encoders fitted on named columns of strings): each feature keeps
    its kind, as a reference would have given it."""
    text = set(runtime.text_features())
    names = signature.feature_names
    if not text or not names or not text <= set(names):
        return signature
    return _with_kinds(signature, names, tuple("BYTES" if n in text else "FP64" for n in names))


def _with_kinds(signature: Signature, names: tuple[str, ...], kinds: tuple[str, ...]) -> Signature:
    """``signature`` of a table whose features ``names`` are each of its kind in ``kinds``:
    its one input is then a ``BYTES`` tensor of rows (see ``Signature``)."""
    spec = signature.inputs[0]
    return replace(
        signature,
        inputs=(TensorSpec(spec.name, "BYTES", spec.shape),),
        feature_names=names,
        feature_datatypes=kinds,
    )
