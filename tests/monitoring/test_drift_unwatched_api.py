"""A version whose input drift is not watched says why (``drift_unwatched``): the dashboard
said "No reference profile" of a model that declares inputs of its own, registered with a
reference (tester "zoo" F3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored

DECLARES = (
    "import numpy as np\n"
    "class Model:\n"
    "    signature = {\n"
    '        "inputs": [{"name": "word", "datatype": "BYTES", "shape": [-1]},\n'
    '                   {"name": "n", "datatype": "FP64", "shape": [-1]}],\n'
    '        "outputs": [{"name": "length", "datatype": "FP64", "shape": [-1]}],\n'
    "    }\n"
    "    def predict(self, d):\n"
    '        lengths = np.array([len(w) for w in d["word"]], dtype=float)\n'
    '        return {"length": lengths * np.asarray(d["n"], dtype=float)}\n'
)


async def test_a_model_with_inputs_of_its_own_says_why_its_drift_is_not_watched(
    registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "py_text.py"
    path.write_text(DECLARES)
    reference = pd.DataFrame({"word": ["apple", "kiwi", "banana"] * 20, "n": [1.0, 2.0, 3.0] * 20})
    register_model(registry, "py_text", path, flavor="python", reference=reference)
    body = {
        "inputs": [
            {"name": "word", "datatype": "BYTES", "shape": [2], "data": ["kiwi", "apple"]},
            {"name": "n", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]},
        ]
    }
    async with monitored(registry) as served:
        reply = await served.client.post("/v2/models/py_text/infer", json=body)
        assert reply.status_code == 200, reply.text
        await asyncio.to_thread(served.monitor.flush)
        report = (await served.client.get("/api/monitoring/py_text")).json()
        dashboard = (await served.client.get("/api/dashboard")).json()
    assert report["drift"] is None
    assert report["drift_unwatched"] == (
        "the model declares inputs of its own (word, n), and drift is watched on one table of "
        "features"
    )
    (shown,) = [m for m in dashboard["models"] if m["name"] == "py_text"]
    assert shown["drift_unwatched"] == report["drift_unwatched"]


async def test_a_watched_version_has_no_reason(served: Served) -> None:
    reply = await served.client.post("/predict/iris", json={"data": [[5.1, 3.5, 1.4, 0.2]]})
    assert reply.status_code == 200
    await asyncio.to_thread(served.monitor.flush)
    report = (await served.client.get("/api/monitoring/iris")).json()
    assert report["drift"] is not None and report["drift_unwatched"] is None
