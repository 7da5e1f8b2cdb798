"""Text sent to a plain Python model arrives as ``str``, as a Python user compares it.

Transports decode BYTES tensors to bytes; a model doing ``color == "red"`` on them was always
wrong, silently. Binary data that is not UTF-8 (an image) is still handed over as bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelpilot.protocol.rows import request_from_records
from modelpilot.protocol.types import InferenceRequest, Tensor
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings

MODEL = """
import numpy as np

class Model:
    signature = {
        "inputs": [
            {"name": "color", "datatype": "BYTES", "shape": [-1]},
            {"name": "age", "datatype": "FP64", "shape": [-1]},
        ],
        "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]}],
    }

    def predict(self, batch):
        seen = [f"{type(c).__name__}:{c == 'red'}" for c in batch["color"]]
        return np.array(seen, dtype=object)
"""


async def test_a_python_model_gets_text_as_str_and_binary_data_as_bytes(
    registry: Registry, tmp_path: Path
) -> None:
    (tmp_path / "colors.py").write_text(MODEL)
    register_model(registry, "colors", tmp_path / "colors.py", flavor="python")
    engine = InferenceEngine(registry, make_settings(registry))
    await engine.start()
    try:
        # Records, as /predict takes them from JSON.
        records = [{"color": "red", "age": 30.0}, {"color": "blue", "age": 40.0}]
        response = await engine.infer("colors", request_from_records(records))
        assert response.outputs[0].data.tolist() == [b"str:True", b"str:False"]
        # A v2 BYTES tensor, as every transport decodes one.
        color = np.array([b"red", "grün".encode()], dtype=object)
        age = np.array([1.0, 2.0])
        tensors = [Tensor("color", "BYTES", (2,), color), Tensor("age", "FP64", (2,), age)]
        response = await engine.infer("colors", InferenceRequest(inputs=tensors))
        assert response.outputs[0].data.tolist() == [b"str:True", b"str:False"]
        # Bytes that are not text (a PNG's first bytes) stay bytes.
        blob = np.array([b"\x89PNG\r\n", b"red"], dtype=object)
        tensors[0] = Tensor("color", "BYTES", (2,), blob)
        response = await engine.infer("colors", InferenceRequest(inputs=tensors))
        assert response.outputs[0].data.tolist() == [b"bytes:False", b"bytes:False"]
    finally:
        await engine.stop()
