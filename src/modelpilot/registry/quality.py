"""How good a model is on labelled rows: the metrics stored at registration and monitored live."""

from __future__ import annotations

from typing import Any

import numpy as np

HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "auc": True, "mae": False, "rmse": False}
"""Every metric ModelPilot computes, and which way is up."""


def label_key(value: Any) -> str:
    """A class label as text, the same whether it came as 1, 1.0, "1", b"1" or numpy.int64(1)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def classification_metrics(
    truth: list[Any], predicted: list[Any], proba: list[np.ndarray | None], classes: list[Any]
) -> dict[str, float]:
    """Accuracy and macro F1; AUC too when every row has probabilities and two classes occur."""
    from sklearn import metrics  # scikit-learn is slow to import; only quality needs it here

    y_true = np.array([label_key(v) for v in truth])
    y_pred = np.array([label_key(v) for v in predicted])
    result = {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "f1": float(metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    labels = [label_key(c) for c in classes]
    present = set(y_true)
    if (
        labels
        and proba
        and all(p is not None for p in proba)
        and len(present) >= 2
        and present <= set(labels)
    ):
        scores = np.vstack([p for p in proba if p is not None])
        if scores.shape[1] == len(labels):
            result["auc"] = _auc(y_true, scores, labels, present)
    return result


def _auc(y_true: np.ndarray, scores: np.ndarray, labels: list[str], present: set[str]) -> float:
    from sklearn import metrics

    keep = [i for i, label in enumerate(labels) if label in present]
    if len(keep) == 2:
        # Two classes occur (of maybe more): a binary AUC on the second one's share.
        pair = scores[:, keep]
        share = pair[:, 1] / np.clip(pair.sum(axis=1), 1e-12, None)
        return float(metrics.roc_auc_score(y_true == labels[keep[1]], share))
    sub = scores[:, keep]
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    return float(
        metrics.roc_auc_score(y_true, sub, multi_class="ovr", labels=[labels[i] for i in keep])
    )


def regression_metrics(truth: list[Any], predicted: list[Any]) -> dict[str, float]:
    """Mean absolute error and root mean squared error."""
    y_true = np.asarray(truth, dtype=np.float64)
    y_pred = np.asarray(predicted, dtype=np.float64).reshape(y_true.shape)
    error = y_pred - y_true
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean()))}
