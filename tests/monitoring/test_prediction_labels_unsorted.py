"""Labels of one round that do not sort together (text beside bytes or None) are counted,
each as its class, instead of the whole round being dropped."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

from modelpilot.monitoring.predictions import PredictionBins
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model


def test_labels_of_mixed_types_are_each_counted_as_their_class(
    registry: Registry, tmp_path: Path
) -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(x, np.array(["big", "big", "small", "small"]))
    path = tmp_path / "text.joblib"
    joblib.dump(model, path)
    bins = PredictionBins(register_model(registry, "text", path), None)
    assert bins.classifier and bins.classes == ["big", "small"]
    # A round of the model's str labels and a call's bytes (as a shared result cache gave
    # them back), and a model's None: counted alike, the unknown one in the last slot.
    mixed = np.array(["big", b"big", "small", None], dtype=object)
    counts, _ = bins.count({bins.output: mixed})
    assert counts.tolist() == [2, 1, 1]
