"""The model's answers on its reference rows at registration: the outcome profile (its
predictions, and the labels of a ``target`` column) and the metrics live quality is judged
against."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelpilot.errors import InvalidInput, ModelPilotError, clipped
from modelpilot.protocol.types import Tensor
from modelpilot.registry.profile import ReferenceProfile, outcome_profile
from modelpilot.registry.quality import (
    as_class,
    classification_metrics,
    label_key,
    regression_metrics,
    scorable,
)
from modelpilot.registry.signature import Signature
from modelpilot.runtimes.base import Runtime
from modelpilot.serving.inputs import assemble_batch
from modelpilot.serving.prediction_output import refuse_several_labels


def is_classifier(signature: Signature) -> bool:
    """Whether the version's ``predict`` output is a class label rather than a number."""
    return signature.task == "classification"


def outcomes(
    runtime: Runtime,
    signature: Signature,
    tensors: list[Tensor],
    profile: ReferenceProfile,
    labels: pd.Series | None,
) -> tuple[ReferenceProfile, dict[str, float], int]:
    """The model's predictions on the reference rows (``tensors``, as a request sends
    them), the labels, how good it was, and how many labelled rows a regressor's errors
    leave out, as the live window does (``quality.scorable``: the prediction was no finite
    number; with them, one NaN made the reference MAE and RMSE NaN)."""
    output = signature.main_output
    if output is None:
        return profile, {}, 0
    main = output.name
    probabilities = signature.probabilities
    wanted = [main] + ([probabilities.name] if probabilities is not None else [])
    try:
        # Cast as a request's rows are (a float32 ONNX graph takes the reference's float64).
        batch = assemble_batch(signature, tensors)
        arrays = runtime.predict(batch, wanted)
    except ModelPilotError as exc:
        hint = ""
        if not signature.is_tabular and "NaN" in exc.message:
            hint = (
                '; if the model takes missing numbers, say so in its signature ("allow_nan": '
                "true), else leave such rows out of the reference"
            )
        raise InvalidInput(f"the reference data does not fit the model: {exc}{hint}") from exc
    except Exception as exc:
        raise InvalidInput(
            f"the model cannot predict on the reference data: {clipped(str(exc))}"
        ) from exc
    predicted = np.asarray(arrays[main])
    if predicted.ndim == 2 and predicted.shape[1] == 1:
        # One value per row in a column of its own: skl2onnx's and tf2onnx's regressors
        # answer [N, 1], which the live monitor reads as the one value of each row too.
        predicted = predicted[:, 0]
    classifier = is_classifier(signature)
    if predicted.ndim > 1 and not classifier:
        return profile, {}, 0
    if predicted.ndim > 1:  # (an output of unknown width, [-1, -1], that gave several)
        refuse_several_labels(signature, int(np.prod(predicted.shape[1:])))
    if labels is None:
        return profile.with_outcomes(outcome_profile(main, predicted, classifier), None), {}, 0
    if not classifier:
        labels = _numeric_labels(labels)
    # Rows without a label say nothing of the model's quality: they are left out of it.
    labelled = labels.notna().to_numpy()
    labels = labels[labelled]
    classes = list(signature.extra.get("classes", []))
    if classifier:  # 0/1 labels of a classifier of booleans, say
        labels = labels.map(lambda value: as_class(value, classes))
        _refuse_strange_labels(labels, classes)
    target = outcome_profile("target", labels.to_numpy(), classifier)
    profile = profile.with_outcomes(outcome_profile(main, predicted, classifier), target)
    answered = list(predicted[labelled].ravel())
    if classifier:
        proba = arrays.get(probabilities.name) if probabilities is not None else None
        rows_proba = list(np.asarray(proba)[labelled]) if proba is not None else []
        return profile, classification_metrics(list(labels), answered, rows_proba, classes), 0
    scored = [scorable(p) for p in answered]
    truth = [t for t, ok in zip(labels, scored, strict=True) if ok]
    unscored = len(answered) - len(truth)
    if not truth:  # nothing to judge live errors against
        return profile, {}, unscored
    kept = [p for p, ok in zip(answered, scored, strict=True) if ok]
    return profile, regression_metrics(truth, kept), unscored


def _numeric_labels(labels: pd.Series) -> pd.Series:
    """The target column of a regressor as numbers, which its labels must be (the model is
    scored against them, and they are watched as a histogram), else InvalidInput naming the
    column and the values that are not; missing labels stay missing."""
    numbers = pd.to_numeric(labels, errors="coerce")
    wrong = numbers.isna().to_numpy() & labels.notna().to_numpy()
    if not wrong.any():
        return numbers.astype(np.float64)
    values = list(dict.fromkeys(labels[wrong].astype(str)))
    shown = ", ".join(repr(v) for v in values[:3]) + (", ..." if len(values) > 3 else "")
    raise InvalidInput(
        f"the target column {str(labels.name)!r} holds values that are not numbers ({shown}: "
        f"{int(wrong.sum())} of {len(labels)} rows, the first in data row "
        f"{int(np.flatnonzero(wrong)[0]) + 1}), but the model is a regressor, whose labels are "
        "numbers: name the column of true values with --target, or correct its values"
    )


def _refuse_strange_labels(labels: pd.Series, classes: list[Any]) -> None:
    """InvalidInput if the target column holds labels the classifier never predicts: its
    accuracy on them would be stored as the quality live labels are judged against (a model
    of the classes "setosa"... given the codes 0, 1, 2 would have 0)."""
    if not classes:
        return
    known = {label_key(c) for c in classes}
    strange = sorted({label_key(v) for v in labels} - known)
    if strange:
        shown = ", ".join(repr(v) for v in strange[:5]) + (", ..." if len(strange) > 5 else "")
        raise InvalidInput(
            f"the target column holds labels the model does not predict ({shown}); its classes "
            f"are {classes}. Give the target as the model's classes (the labels it was fitted "
            "on), or leave --target out"
        )
