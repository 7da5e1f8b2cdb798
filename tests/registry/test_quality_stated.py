"""Which stated quality figures a model can be judged against: in their metric's range, and of
a metric its task computes."""

from __future__ import annotations

import pytest

from modelpilot.errors import InvalidInput
from modelpilot.registry.quality import computed_metrics, out_of_range, refuse_unjudgeable_metrics
from modelpilot.registry.signature import Signature, TensorSpec

TABLE = (TensorSpec("input-0", "FP64", (-1, 4)),)


def _signature(*outputs: tuple[str, str, tuple[int, ...]], **extra: object) -> Signature:
    specs = tuple(TensorSpec(name, kind, shape) for name, kind, shape in outputs)
    return Signature(inputs=TABLE, outputs=specs, extra=dict(extra))


@pytest.mark.parametrize(
    ("metric", "value"),
    [("accuracy", 1.5), ("accuracy", 91), ("f1", -0.1), ("auc", 1.01), ("mae", -1), ("rmse", -0.5)],
)
def test_a_figure_past_its_metrics_range_is_refused(metric: str, value: float) -> None:
    """accuracy=1.5 raised a concept-drift alert no model could ever end."""
    assert out_of_range(metric, value) is not None
    with pytest.raises(InvalidInput) as refused:
        refuse_unjudgeable_metrics({"metrics": {metric: value}})
    assert str(refused.value).startswith(f"metadata {metric}={value!r}: {metric} is ")


@pytest.mark.parametrize(
    ("metric", "value"),
    [("accuracy", 0), ("accuracy", 1), ("f1", 0.5), ("auc", 1.0), ("mae", 0), ("rmse", 1e6)],
)
def test_a_figure_within_its_range_is_taken(metric: str, value: float) -> None:
    assert out_of_range(metric, value) is None
    refuse_unjudgeable_metrics({metric: value})


def test_a_score_says_it_is_a_share_and_an_error_that_it_is_not_negative() -> None:
    assert (
        out_of_range("accuracy", 91)
        == "accuracy is a share from 0 to 1 (such as accuracy=0.91 for 91%)"
    )
    assert out_of_range("mae", -2) == "mae is an error, 0 or more, in the units of the target"


def test_the_metrics_each_task_computes() -> None:
    regressor = _signature(("predict", "FP64", (-1,)))
    classifier = _signature(
        ("predict", "INT64", (-1,)), ("predict_proba", "FP64", (-1, 3)), classes=[0, 1, 2]
    )
    without_probabilities = _signature(("predict", "BYTES", (-1,)), classes=["a", "b"])
    unnamed_classes = _signature(("predict", "INT64", (-1,)), ("predict_proba", "FP64", (-1, 2)))
    assert computed_metrics(regressor) == ("mae", "rmse")
    assert computed_metrics(classifier) == ("accuracy", "f1", "auc")
    assert computed_metrics(without_probabilities) == ("accuracy", "f1")
    assert computed_metrics(unnamed_classes) == ("accuracy", "f1")


def test_a_stated_task_wins_over_the_prediction_s_datatype() -> None:
    """Whole numbers are a classifier's labels unless the model or its owner says otherwise."""
    assert _signature(("predict", "INT64", (-1,))).task == "classification"
    counts = _signature(("predict", "INT64", (-1,)), task="regression")
    assert counts.task == "regression"
    assert computed_metrics(counts) == ("mae", "rmse")
    assert _signature(("predict", "FP64", (-1,)), task="classification").task == "classification"
    assert Signature.from_dict(counts.to_dict()).task == "regression"  # as the registry keeps it
