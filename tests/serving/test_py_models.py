""".py models that declare one named input per column, text among them: registered with
their reference (profiled and scored as other flavors), scored by ``modelpilot predict`` and
watched; and what a .py model without a signature is told when its reference has text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.errors import InvalidInput
from modelpilot.protocol.rows import request_from_records
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.cli.conftest import Run
from tests.conftest import make_settings
from tests.monitoring.conftest import monitored

DECLARED = """
import numpy as np

SHAPE = [-1]

class Model:
    signature = {
        "inputs": [
            {"name": "color", "datatype": "BYTES", "shape": SHAPE},
            {"name": "age", "datatype": "FP64", "shape": SHAPE},
        ],
        "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]}],
    }

    def predict(self, batch):
        colors = [c.decode() if isinstance(c, bytes) else c for c in np.ravel(batch["color"])]
        ages = np.ravel(batch["age"]).astype(float)
        return np.array(
            ["yes" if c == "red" or a > 50 else "no" for c, a in zip(colors, ages)], dtype=object
        )
"""

UNDECLARED = """
import numpy as np

class Model:
    def predict(self, x):
        return np.zeros(len(x))
"""


def answers(frame: pd.DataFrame) -> np.ndarray:
    return np.where((frame["color"] == "red") | (frame["age"] > 50), "yes", "no")


def people(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"color": rng.choice(["red", "green", "012"], rows), "age": rng.integers(18, 80, rows)}
    )


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """The declared model's file and its reference: the inputs (a label ``y`` beside them,
    and an ``id`` that is no input), whose labels the model gets right but for a tenth."""
    (tmp_path / "declared.py").write_text(DECLARED)
    frame = people(300, seed=0)
    truth = answers(frame)
    truth[::10] = np.where(truth[::10] == "yes", "no", "yes")
    frame.assign(id=range(300), y=truth).to_csv(tmp_path / "reference.csv", index=False)
    return tmp_path


def test_registration_profiles_the_declared_inputs_predictions_and_target(
    registry: Registry, files: Path
) -> None:
    """The target was dropped silently, and no predictions or metrics were kept."""
    version = register_model(
        registry, "pym", files / "declared.py", reference=files / "reference.csv", target="y"
    )
    assert version.metadata["reference_metrics"]["accuracy"] == pytest.approx(0.9)
    profile = registry.reference_profile("pym", 1)
    assert profile is not None
    assert [f.name for f in profile.features] == ["color", "age"]  # not the id
    assert profile.feature("color").kind == "categorical"
    assert "012" in profile.feature("color").categories  # read as text, not the number 12
    assert profile.predictions is not None and set(profile.predictions.categories) == {"yes", "no"}
    assert profile.target is not None and sum(profile.target.categories.values()) == 300
    # Feature drift is watched on one table of features: said, not left to be found out.
    notes = version.metadata["monitoring_notes"]
    assert len(notes) == 1 and "drift of the model's input features is not watched" in notes[0]


def test_a_reference_without_the_declared_inputs_is_refused(
    registry: Registry, files: Path
) -> None:
    reference = pd.read_csv(files / "reference.csv").drop(columns=["age"])
    with pytest.raises(
        InvalidInput, match=r"the reference data lacks the model's inputs \['age'\]"
    ):
        register_model(registry, "pym", files / "declared.py", reference=reference)


def test_register_says_what_is_not_watched(run: Run, files: Path) -> None:
    reference = str(files / "reference.csv")
    result = run("register", "pym", str(files / "declared.py"), "--reference", reference)
    assert result.exit_code == 0, result.output
    assert "warning: the drift of the model's input features is not watched" in result.stderr


@pytest.mark.parametrize("shape", ["[-1]", "[-1, 1]"])
def test_predict_sends_each_declared_input_in_its_datatype(
    run: Run, files: Path, shape: str
) -> None:
    """Refused before: "data row 1, column 'color': 'red' is not a number"."""
    (files / "declared.py").write_text(DECLARED.replace("SHAPE = [-1]", f"SHAPE = {shape}"))
    model, reference = str(files / "declared.py"), str(files / "reference.csv")
    assert run("register", "pym", model, "--reference", reference).exit_code == 0
    frame = people(50, seed=1)
    frame[["age", "color"]].to_csv(files / "rows.csv", index=False)  # by name, not position
    result = run("predict", "pym", str(files / "rows.csv"), "-o", str(files / "out.csv"))
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(files / "out.csv", dtype=str)
    np.testing.assert_array_equal(scored["predict"], answers(frame))
    (files / "hole.csv").write_text("color,age\nred,30\n,40\n")
    result = run("predict", "pym", str(files / "hole.csv"), "-o", str(files / "h.csv"))
    assert isinstance(result.exception, InvalidInput)
    assert "data row 2, column 'color' is empty, and the model takes text" in str(result.exception)


async def test_a_null_for_a_declared_text_input_is_refused_not_sent_as_none(
    registry: Registry, files: Path
) -> None:
    """It reached the model as the text "None"."""
    register_model(registry, "pym", files / "declared.py", reference=files / "reference.csv")
    engine = InferenceEngine(registry, make_settings(registry))
    await engine.start()
    try:
        records = [{"color": "red", "age": 30}, {"color": None, "age": 60}]
        with pytest.raises(InvalidInput, match="input 'color' is missing \\(null\\) in row 1"):
            await engine.infer("pym", request_from_records(records))
    finally:
        await engine.stop()


async def test_its_predictions_are_watched_against_the_reference(
    registry: Registry, files: Path
) -> None:
    """Every live class was "(unknown)": the reference held no predictions to know them by."""
    register_model(
        registry, "pym", files / "declared.py", reference=files / "reference.csv", target="y"
    )
    async with monitored(registry) as served:
        records = people(30, seed=2).to_dict("records")
        reply = await served.client.post("/predict/pym", json={"instances": records})
        assert reply.status_code == 200, reply.text
        served.monitor.flush()
        report = (await served.client.get("/api/monitoring/pym")).json()
    assert set(report["predictions"]["classes"]) <= {"yes", "no"}
    assert sum(report["predictions"]["classes"].values()) == 30
    assert report["predictions"]["drift"] is not None


def test_a_py_model_without_a_signature_is_told_to_declare_its_text_inputs(
    registry: Registry, files: Path
) -> None:
    (files / "undeclared.py").write_text(UNDECLARED)
    with pytest.raises(InvalidInput) as info:
        register_model(
            registry, "pym", files / "undeclared.py", reference=files / "reference.csv", target="y"
        )
    message = str(info.value)
    assert "a .py model that declares no signature" in message
    assert '{"name": "color", "datatype": "BYTES", "shape": [-1]}' in message
    assert '{"name": "age", "datatype": "FP64", "shape": [-1]}' in message
