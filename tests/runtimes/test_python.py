"""Plain Python models: finding the class, load(), declared and inferred signatures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelpilot.errors import ArtifactError
from modelpilot.runtimes.flavors import load_runtime


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "model.py"
    path.write_text(source)
    return path


def test_single_class_with_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "class Doubler:\n"
            "    def load(self):\n"
            "        self.factor = 2\n"
            "    def predict(self, x):\n"
            "        return x.sum(axis=1) * self.factor\n"
        ),
    )
    runtime = load_runtime("python", path)
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert runtime.predict({"input-0": x})["predict"].tolist() == [6.0, 14.0]
    signature = runtime.infer_signature(example=x, feature_names=["a", "b"])
    assert signature.inputs[0].shape == (-1, 2) and signature.feature_names == ("a", "b")
    assert signature.outputs[0].datatype == "FP64"


def test_declared_signature_and_dict_outputs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "import numpy as np\n"
            "class Helper:\n"
            "    pass\n"
            "class Model:\n"
            "    signature = {'inputs': [{'name': 'x', 'datatype': 'FP32', 'shape': [-1, 3]}],\n"
            "                 'outputs': [{'name': 'mean', 'datatype': 'FP32', 'shape': [-1]},\n"
            "                             {'name': 'max', 'datatype': 'FP32', 'shape': [-1]}]}\n"
            "    def predict(self, x):\n"
            "        return {'mean': x.mean(axis=1), 'max': x.max(axis=1)}\n"
        ),
    )
    runtime = load_runtime("python", path)
    assert [s.name for s in runtime.signature.outputs] == ["mean", "max"]
    out = runtime.predict({"x": np.ones((2, 3), dtype=np.float32)}, ["max"])
    assert list(out) == ["max"]


def test_ambiguous_or_broken_files(tmp_path: Path) -> None:
    two = write(
        tmp_path,
        (
            "class A:\n    def predict(self, x): return x\n"
            "class B:\n    def predict(self, x): return x\n"
        ),
    )
    with pytest.raises(ArtifactError, match="found: A, B"):
        load_runtime("python", two)
    broken = write(tmp_path, "import not_a_module_anywhere\n")
    with pytest.raises(ArtifactError, match=r"importing model\.py failed"):
        load_runtime("python", broken)


def test_a_model_that_cannot_get_ready_says_which_step_failed_and_why(tmp_path: Path) -> None:
    """The user's constructor and load() run at registration: what they raise (a file their
    load() reads is missing, a module the file imports is not installed) is the model's
    error, not a traceback of the command."""
    loading = write(
        tmp_path,
        "class Model:\n"
        "    def load(self):\n"
        "        open('/nonexistent/weights.bin', 'rb')\n"
        "    def predict(self, x): return x\n",
    )
    with pytest.raises(ArtifactError, match=r"Model\.load\(\) failed: FileNotFoundError"):
        load_runtime("python", loading)
    making = write(
        tmp_path,
        "class Model:\n"
        "    def __init__(self):\n"
        "        raise ValueError('no weights')\n"
        "    def predict(self, x): return x\n",
    )
    with pytest.raises(ArtifactError, match=r"Model\(\) failed: ValueError: no weights"):
        load_runtime("python", making)
    importing = write(tmp_path, "import not_a_module_anywhere\n")
    with pytest.raises(
        ArtifactError, match="it imports the module 'not_a_module_anywhere', which this Python"
    ):
        load_runtime("python", importing)


@pytest.mark.parametrize(
    ("declared", "said"),
    [
        # A scalar input registered, and every request for it was a 500 (IndexError).
        ('{"name": "x", "datatype": "FP64", "shape": []}', "'x' has shape [], but every"),
        ('{"name": "x", "shape": [-1]}', "is not a signature (KeyError: 'datatype')"),
        ('{"name": "x", "datatype": "FLOAT", "shape": [-1]}', "datatype 'FLOAT', not one of"),
    ],
)
def test_a_declared_signature_the_server_cannot_serve_is_refused_at_load(
    tmp_path: Path, declared: str, said: str
) -> None:
    path = tmp_path / "declared.py"
    path.write_text(
        "class Model:\n"
        f"    signature = {{'inputs': [{declared}], 'outputs': "
        "[{'name': 'y', 'datatype': 'FP64', 'shape': [-1]}]}\n"
        "    def predict(self, x):\n"
        "        return x\n"
    )
    with pytest.raises(ArtifactError, match=r"Model\.signature") as raised:
        load_runtime("python", path)
    assert said in str(raised.value)
