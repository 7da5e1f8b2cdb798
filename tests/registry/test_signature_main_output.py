"""Which output of a signature is "the prediction": by its name, never by its place."""

from __future__ import annotations

from modelpilot.registry.signature import Signature, TensorSpec

PROBABILITIES = TensorSpec("probabilities", "FP32", (-1, 3))
LABEL = TensorSpec("label", "INT64", (-1,))
INPUT = (TensorSpec("X", "FP32", (-1, 4)),)


def signature(*outputs: TensorSpec, **extra: object) -> Signature:
    return Signature(inputs=INPUT, outputs=outputs, extra=dict(extra))


def test_skl2onnx_label_is_the_prediction_whatever_the_graph_order() -> None:
    for outputs in ((LABEL, PROBABILITIES), (PROBABILITIES, LABEL)):
        found = signature(*outputs, classes=[0, 1, 2])
        assert found.main_output == LABEL
        assert found.probabilities == PROBABILITIES
        assert found.task == "classification"


def test_predict_comes_before_any_other_name() -> None:
    predict = TensorSpec("predict", "FP64", (-1,))
    assert signature(LABEL, predict).main_output == predict


def test_the_probabilities_are_never_the_prediction_beside_another_output() -> None:
    scores = TensorSpec("scores", "FP32", (-1,))
    assert signature(PROBABILITIES, scores).main_output == scores


def test_an_output_of_probabilities_alone_stays_the_only_one() -> None:
    assert signature(PROBABILITIES).main_output == PROBABILITIES
    assert signature().main_output is None
