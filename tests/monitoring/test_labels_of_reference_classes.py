"""A classifier that does not list its classes (a plain Python model) takes as labels the
classes its reference data named (its labels, and what it predicted for them), where it was
registered with them: three typos ("banana", 3.7, true) among 35 iris labels were taken,
halved its macro F1 and raised a critical concept drift."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring.performance import PerformanceThresholds, PerformanceWindow
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored

SPECIES = ["setosa", "versicolor", "virginica"]

BY_PETAL = (
    "import numpy as np\n"
    "class Model:\n"
    "    def predict(self, x):\n"
    "        x = np.asarray(x, dtype=float)\n"
    "        names = np.array(['setosa', 'versicolor', 'virginica'])\n"
    "        return names[(x[:, 2] >= 2.5).astype(int) + (x[:, 2] >= 4.9).astype(int)]\n"
)
"""A `.py` classifier of iris by petal length: it names no classes of its own."""


@pytest.fixture
async def served(
    registry: Registry, tmp_path: Path, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> AsyncIterator[Served]:
    path = tmp_path / "by_petal.py"
    path.write_text(BY_PETAL)
    reference = iris_frame.assign(species=np.array(SPECIES)[iris_target])
    register_model(registry, "iris", path, flavor="python", reference=reference, target="species")
    async with monitored(registry, performance_min_labels=20) as it:
        yield it


async def test_a_label_none_of_the_reference_classes_is_refused(
    served: Served, iris_frame: pd.DataFrame
) -> None:
    reply = await served.client.post(
        "/predict/iris", json={"data": iris_frame.iloc[:3].values.tolist()}
    )
    assert reply.status_code == 200, reply.text
    request_id = reply.json()["id"]
    for typo in ("banana", 3.7, True, "Setosa"):
        body = {"request_id": request_id, "label": ["setosa", typo, "virginica"]}
        refused = await served.client.post("/api/feedback/iris", json=body)
        assert refused.status_code == 422, (typo, refused.text)
        assert refused.json()["error"].startswith(f"request {request_id!r} row 1: label ")
        assert (
            "is not one of the classes of the reference data (its labels, and the model's "
            'predictions of it) ("setosa", "versicolor", "virginica"); send one of those'
        ) in refused.json()["error"]
    body = {"request_id": request_id, "label": ["setosa", "setosa", "setosa"]}
    assert (await served.client.post("/api/feedback/iris", json=body)).json()["accepted"] == 3


def window(label_classes: list[str], classes: list[object] | None = None) -> PerformanceWindow:
    return PerformanceWindow(
        "classification",
        classes or [],
        {},
        None,
        1000,
        3600.0,
        PerformanceThresholds(),
        label_classes=label_classes,
    )


def test_numbers_among_the_reference_classes_are_compared_as_numbers() -> None:
    numbered = window(["0", "1"], classes=["2"])  # "2": a class predicted on the reference
    assert [numbered.checked(v) for v in (0, 1.0, "1", 2)] == [0, 1.0, "1", 2]
    with pytest.raises(ValueError, match=r"predictions of it\) \(0, 1, 2\); send one of"):
        numbered.checked(7)


def test_no_class_is_refused_where_they_are_not_all_known() -> None:
    """Of a target of more classes than its profile names (the rest pooled: its monitor
    gives no classes), or a model registered without labels, any string or number is taken,
    as before."""
    assert window([]).checked("zebra") == "zebra"
    # The model's own classes, where it lists them, come first.
    declared = PerformanceWindow(
        "classification",
        ["0", "1"],
        {},
        None,
        1000,
        3600.0,
        PerformanceThresholds(),
        known_classes=[0, 1],
        label_classes=["0", "1", "2"],
    )
    with pytest.raises(ValueError, match=r"is not one of the model's classes \(0, 1\)"):
        declared.checked(2)


def test_a_class_named_like_the_old_pooled_key_is_a_class() -> None:
    """Pipelines bucket rare classes under "__other__": such a class was taken for a profile's
    pooled tail, and then any label at all was taken (a typo among them too)."""
    pooled_name = window(["a", "b", "__other__"])
    assert pooled_name.checked("__other__") == "__other__"
    with pytest.raises(ValueError, match=r'\("__other__", "a", "b"\); send one of those'):
        pooled_name.checked("zebra")
