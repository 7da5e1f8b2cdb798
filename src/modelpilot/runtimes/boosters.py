"""What XGBoost and LightGBM boosters share: a task kind, a signature, outputs from scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.runtimes.tabular import check_example, feature_names_for, input_spec

BINARY, MULTI, REGRESSION = "binary", "multi", "regression"


def booster_signature(
    kind: str,
    n_classes: int,
    n_features: int,
    model_names: Sequence[str] | None,
    example: np.ndarray | None,
    feature_names: Sequence[str] | None,
) -> Signature:
    """Classifiers give labels and probabilities; regressors a number; NaN is welcome."""
    check_example(example, n_features)
    extra: dict[str, object] = {}
    if kind == REGRESSION:
        outputs: tuple[TensorSpec, ...] = (TensorSpec("predict", "FP64", (-1,)),)
    else:
        classes = 2 if kind == BINARY else n_classes
        outputs = (
            TensorSpec("predict", "INT64", (-1,)),
            TensorSpec("predict_proba", "FP64", (-1, classes)),
        )
        # A booster learns classes 0 to K-1 (it takes no other labels), and predicts their
        # index: saying so lets labels be checked (a 5 or a "yes" is no class of it).
        extra["classes"] = list(range(classes))
    return Signature(
        inputs=(input_spec(n_features, example),),
        outputs=outputs,
        feature_names=feature_names_for(model_names, feature_names, n_features),
        allow_nan=True,
        extra=extra,
    )


def booster_outputs(kind: str, raw: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """The boosters' raw scores (P(class 1) for binary tasks) as the signature's outputs."""
    if kind == REGRESSION:
        return {"predict": raw}
    proba = np.column_stack([1.0 - raw, raw]) if kind == BINARY else raw
    result = {"predict": proba.argmax(axis=1).astype(np.int64), "predict_proba": proba}
    return {k: v for k, v in result.items() if not outputs or k in outputs}
