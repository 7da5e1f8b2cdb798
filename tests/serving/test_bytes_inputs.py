"""Numbers sent for an input a model declares as text (BYTES) are refused by the input's
name: turned into objects, they reached a ``.py`` model as floats, which it failed on
(``len()`` of a float) or, worse, answered for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelpilot.errors import InvalidInput
from modelpilot.protocol.rows import request_from_records
from modelpilot.protocol.types import InferenceRequest, Tensor
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.inputs import assemble_batch
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings

TEXT = Signature(
    inputs=(TensorSpec("txt", "BYTES", (-1,)), TensorSpec("n", "FP64", (-1,))),
    outputs=(TensorSpec("out", "FP64", (-1,)),),
)

MODEL = """
import numpy as np

class TextModel:
    signature = {
        "inputs": [
            {"name": "txt", "datatype": "BYTES", "shape": [-1]},
            {"name": "n", "datatype": "FP64", "shape": [-1]},
        ],
        "outputs": [{"name": "out", "datatype": "FP64", "shape": [-1]}],
    }

    def predict(self, x):
        return np.array([len(t) for t in x["txt"]], dtype=np.float64) + x["n"]
"""


def tensor(name: str, datatype: str, data: object) -> Tensor:
    array = np.asarray(data, dtype=object if datatype == "BYTES" else None)
    return Tensor(name, datatype, array.shape, array)


@pytest.mark.parametrize(
    ("datatype", "data"),
    [("FP64", [1.0]), ("INT64", [7]), ("BOOL", [True]), ("FP32", np.array([1.0], "f4"))],
)
def test_a_number_tensor_for_a_text_input_is_refused_by_name(datatype: str, data: object) -> None:
    numbers = Tensor("txt", datatype, (1,), np.asarray(data))
    with pytest.raises(InvalidInput) as refused:
        assemble_batch(TEXT, [numbers, tensor("n", "FP64", [1.0])])
    assert str(refused.value) == (
        f"input 'txt' is {datatype} but the model takes text (BYTES); send strings, as BYTES"
    )


def test_text_for_a_text_input_is_taken() -> None:
    batch = assemble_batch(TEXT, [tensor("txt", "BYTES", [b"abc"]), tensor("n", "FP64", [1.0])])
    assert batch["txt"].tolist() == [b"abc"]


async def test_a_python_model_never_gets_numbers_where_it_declared_text(
    registry: Registry, tmp_path: Path
) -> None:
    (tmp_path / "text.py").write_text(MODEL)
    register_model(registry, "text", tmp_path / "text.py", flavor="python")
    engine = InferenceEngine(registry, make_settings(registry))
    await engine.start()
    try:
        good = [tensor("txt", "BYTES", [b"abc"]), tensor("n", "FP64", [1.0])]
        response = await engine.infer("text", InferenceRequest(inputs=good))
        assert response.outputs[0].data.tolist() == [4.0]
        # The tester's request: txt as FP64 [1.0]; the model crashed on it ("object of type
        # 'float' has no len()").
        numbers = [tensor("txt", "FP64", [1.0]), tensor("n", "FP64", [1.0])]
        with pytest.raises(InvalidInput, match="input 'txt' is FP64 but the model takes text"):
            await engine.infer("text", InferenceRequest(inputs=numbers))
        # Records, as /predict takes them, with a number where the text goes.
        with pytest.raises(InvalidInput, match="input 'txt' is FP64"):
            await engine.infer("text", request_from_records([{"txt": 2.5, "n": 1.0}]))
    finally:
        await engine.stop()
