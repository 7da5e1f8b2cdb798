"""Registration of models whose prediction output is not found first or not stated at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from modelpilot.errors import InvalidInput
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model

PROBABILITIES_ONLY = '''
import numpy as np


class Model:
    """A classifier that answers its probabilities alone, as many ONNX and Triton ones do."""

    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
        "extra": {"classes": [0, 1, 2]},
    }

    def predict(self, x):
        s = np.asarray(x, np.float32)[:, :3]
        e = np.exp(s - s.max(1, keepdims=True))
        return {"probabilities": e / e.sum(1, keepdims=True)}
'''

TEXT_ANSWERS = """
import numpy as np


class Model:
    def predict(self, x):
        return np.where(np.asarray(x, float).sum(1) > 1, "high", "low").astype(object)
"""


@pytest.fixture
def probabilities_only(tmp_path: Path) -> Path:
    path = tmp_path / "probabilities_only.py"
    path.write_text(PROBABILITIES_ONLY)
    return path


def test_a_classifier_of_probabilities_alone_is_refused_with_a_reason(
    registry: Registry,
    probabilities_only: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> None:
    reference = iris_frame.assign(species=iris_target)
    with pytest.raises(InvalidInput, match="no output of the label") as refused:
        register_model(registry, "proba", probabilities_only, reference=reference, target="species")
    assert "'predict', 'label' or 'output_label'" in refused.value.message
    with pytest.raises(InvalidInput, match="no output of the label"):
        register_model(registry, "proba", probabilities_only)  # no reference: no guess either
    assert registry.list_models() == []


def test_an_onnx_classifier_listing_its_probabilities_first_is_a_classifier(
    registry: Registry, tmp_path: Path, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> None:
    x = iris_frame.to_numpy(np.float32)
    model = LogisticRegression(max_iter=500).fit(x, iris_target)
    graph = to_onnx(model, x[:1], options={"zipmap": False})
    outputs = list(graph.graph.output)
    assert [o.name for o in outputs] == ["label", "probabilities"]
    del graph.graph.output[:]
    graph.graph.output.extend(outputs[::-1])
    path = tmp_path / "reordered.onnx"
    path.write_bytes(graph.SerializeToString())
    onnx.checker.check_model(onnx.load(str(path)))

    reference = iris_frame.assign(species=iris_target)
    version = register_model(registry, "reordered", path, reference=reference, target="species")
    signature = version.signature
    assert [o.name for o in signature.outputs] == ["probabilities", "label"]
    assert signature.main_output is not None and signature.main_output.name == "label"
    assert signature.extra["classes"] == [0, 1, 2]
    assert signature.task == "classification"
    metrics = version.metadata["reference_metrics"]
    assert metrics["accuracy"] == pytest.approx(float(np.mean(model.predict(x) == iris_target)))
    assert set(metrics) == {"accuracy", "f1", "auc"}
    assert not version.metadata.get("monitoring_notes")


def test_a_py_model_registered_blind_is_told_its_answers_are_taken_for_numbers(
    registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "text_answers.py"
    path.write_text(TEXT_ANSWERS)
    version = register_model(registry, "blind", path)
    notes = version.metadata["monitoring_notes"]
    assert len(notes) == 1 and "taken for numbers (FP64) of a regression" in notes[0]
    assert "--reference" in notes[0]

    seen = register_model(registry, "seen", path, reference=np.zeros((4, 2)))
    assert seen.signature.outputs[0].datatype == "BYTES"
    assert not seen.metadata.get("monitoring_notes")
    assert seen.signature.task == "classification"


def test_a_py_model_that_states_its_task_or_signature_gets_no_such_note(
    registry: Registry, tmp_path: Path
) -> None:
    stated = tmp_path / "stated.py"
    stated.write_text(
        "class Model:\n"
        '    task = "regression"\n\n'
        "    def predict(self, x):\n"
        "        return x[:, 0]\n"
    )
    assert not register_model(registry, "stated", stated).metadata.get("monitoring_notes")
    declared = tmp_path / "declared.py"
    declared.write_text(
        "class Model:\n"
        '    signature = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}],\n'
        '                 "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]}\n\n'
        "    def predict(self, x):\n"
        '        return ["a"] * len(x)\n'
    )
    assert not register_model(registry, "declared", declared).metadata.get("monitoring_notes")
