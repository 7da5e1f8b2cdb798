"""Labels posted to /api/feedback that do not fit their prediction: refused with 422, naming
the request, and a refused call keeps none of its labels."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd

from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import Served, monitored, send


async def _labelled(served: Served, frame: pd.DataFrame, target: np.ndarray) -> list[str]:
    """Iris's 150 rows predicted one per request, and their true labels posted."""
    ids = await send(served.client, frame.to_numpy(), per_request=1)
    served.monitor.flush()
    labels = [{"request_id": i, "label": int(t)} for i, t in zip(ids, target, strict=True)]
    reply = await served.client.post("/api/feedback/iris", json={"labels": labels})
    assert reply.json() == {"accepted": 150, "unknown": []}
    return ids


async def _performance(client: httpx.AsyncClient) -> dict[str, object]:
    performance: dict[str, object] = (await client.get("/api/monitoring/iris")).json()[
        "performance"
    ]
    performance.pop("history")
    return performance


NO_CLASS_OF_IRIS = [
    (7, "7"),
    (-1, "-1"),
    (1.5, "1.5"),
    (1e308, "1e+308"),
    ("setosa", '"setosa"'),
    (True, "true"),  # JSON's true is no class of a classifier of 0, 1 and 2
    ("1.0", '"1.0"'),
]


async def test_a_label_that_is_none_of_the_classifiers_classes_is_refused_and_changes_nothing(
    served: Served, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> None:
    """Taken, a 7 for iris counted as a wrong prediction: one typo after 150 true labels took
    F1 from 0.973 to 0.727, dropped AUC, and raised a critical concept-drift alert."""
    client = served.client
    ids = await _labelled(served, iris_frame, iris_target)
    before = await _performance(client)
    assert before["labels"] == 150 and before["concept_drift"] is False
    for label, shown in NO_CLASS_OF_IRIS:
        one = await client.post("/api/feedback/iris", json={"request_id": ids[0], "label": label})
        assert one.status_code == 422, (label, one.text)
        error = one.json()["error"]
        assert ids[0] in error and f"label {shown} is not one of the model's classes" in error
        assert "(0, 1, 2)" in error  # what to send instead
        # With a correction for another request, which must not be taken either.
        labels = [{"request_id": ids[1], "label": 2}, {"request_id": ids[0], "label": label}]
        many = await client.post("/api/feedback/iris", json={"labels": labels})
        assert many.status_code == 422 and ids[0] in many.json()["error"], (label, many.text)
    assert await _performance(client) == before
    assert (await client.get("/api/alerts")).json()["active"] == []


async def test_a_label_the_metrics_read_as_a_class_is_taken(served: Served) -> None:
    # 2, 2.0 and "2" are the same class to the metrics (and to registration).
    ids = await send(served.client, np.array([[6.2, 3.4, 5.4, 2.3]] * 3), per_request=1)
    served.monitor.flush()
    labels = [{"request_id": i, "label": v} for i, v in zip(ids, [2, 2.0, "2"], strict=True)]
    reply = await served.client.post("/api/feedback/iris", json={"labels": labels})
    assert reply.json() == {"accepted": 3, "unknown": []}
    performance = (await served.client.get("/api/monitoring/iris")).json()["performance"]
    assert performance["current"]["accuracy"] == 1.0


async def test_a_bad_label_in_a_list_names_its_row(served: Served) -> None:
    ids = await send(served.client, np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]), 2)
    served.monitor.flush()
    reply = await served.client.post(
        "/api/feedback/iris", json={"request_id": ids[0], "label": [0, "x"]}
    )
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert f'request {ids[0]!r} row 1: label "x" is not one of the model\'s classes' in error


async def test_labels_that_do_not_fit_are_422_a_body_that_does_not_parse_400(
    served: Served,
) -> None:
    """422 for every label that does not fit its prediction, the wrong number of them as a
    wrong kind; 400 only for a body that cannot be read as a JSON object."""
    client = served.client
    ids = await send(client, np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]), 2)
    served.monitor.flush()
    for body in (
        {"request_id": ids[0], "label": 0},  # two rows predicted, one label
        {"request_id": ids[0], "label": [0, 2, 1]},
        {"labels": [{"request_id": ids[0], "label": [0]}]},
        {"request_id": ids[0], "label": [0, None]},  # a label of the wrong kind
        {"request_id": ids[0], "label": [0, 9]},  # no class of the model
    ):
        reply = await client.post("/api/feedback/iris", content=json.dumps(body))
        assert reply.status_code == 422, (body, reply.text)
        assert ids[0] in reply.json()["error"]
    for content in ("request_id=x&label=0", "[1, 2]", '{"request_id": '):
        reply = await client.post("/api/feedback/iris", content=content)
        assert reply.status_code == 400, (content, reply.text)
    performance = (await client.get("/api/monitoring/iris")).json()["performance"]
    assert performance is None  # nothing was taken


async def test_labels_for_a_model_that_does_not_exist_say_so(served: Served) -> None:
    """The answer was that no prediction of model 'nosuch' had the id: true, but it sent
    the client looking for a wrong id rather than the wrong name."""
    ids = await send(served.client, np.array([[5.1, 3.5, 1.4, 0.2]]), 1)
    served.monitor.flush()
    for model in ("nosuch", "iris2"):
        reply = await served.client.post(
            f"/api/feedback/{model}", json={"request_id": ids[0], "label": 0}
        )
        assert reply.status_code == 404
        error = reply.json()["error"]
        assert error == (await served.client.get(f"/v2/models/{model}")).json()["error"]
        assert error.startswith(f"no model named {model!r} in the registry; registered models: ")
    reply = await served.client.post("/api/feedback/-x", json={"request_id": ids[0], "label": 0})
    assert reply.status_code == 404 and "model names are" in reply.json()["error"]
    # Whatever the body, as the inference endpoints answer (it was 400, "not valid JSON").
    for body in (b"garbage", b'{"labels": 3}'):
        reply = await served.client.post("/api/feedback/nosuch", content=body)
        assert reply.status_code == 404, reply.text
        assert reply.json()["error"].startswith("no model named 'nosuch' in the registry")
    reply = await served.client.post("/api/feedback/iris", content=b"garbage")
    assert reply.status_code == 400  # a model that exists: the body is what is wrong
    # A model that exists, and ids that match nothing of it, are told apart from that.
    reply = await served.client.post("/api/feedback/iris", json={"request_id": "x1", "label": 0})
    assert reply.status_code == 404
    assert reply.json()["error"].startswith("no prediction of model 'iris' has the request id")


async def test_request_ids_that_match_nothing_are_quoted_short(served: Served) -> None:
    """A 100,000-character request id came back whole in the 404, as did ten of them."""
    long_id = "r" * 100_000
    reply = await served.client.post("/api/feedback/iris", json={"request_id": long_id, "label": 0})
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert len(error) < 1000 and "'rrrr" in error and "... (100000 characters)" in error
    labels = [{"request_id": f"{i}-{long_id}", "label": 0} for i in range(12)]
    reply = await served.client.post("/api/feedback/iris", json={"labels": labels})
    error = reply.json()["error"]
    assert len(error) < 2500 and "(100002 characters) and 2 more;" in error


async def test_labels_for_a_model_no_longer_served_are_taken(served: Served) -> None:
    ids = await send(served.client, np.array([[5.1, 3.5, 1.4, 0.2]]), 1)
    served.monitor.flush()
    unload = await served.client.post("/v2/repository/models/iris/unload")
    assert unload.status_code == 200, unload.text
    assert (await served.client.get("/v2/models/iris")).status_code == 404
    reply = await served.client.post("/api/feedback/iris", json={"request_id": ids[0], "label": 0})
    assert reply.json() == {"accepted": 1, "unknown": []}


async def test_a_body_of_neither_shape_is_refused_in_plain_words(served: Served) -> None:
    reply = await served.client.post("/api/feedback/iris", json={})
    assert reply.status_code == 422
    # Was "invalid request: : Value error, send ...": pydantic's location and kind of error.
    assert reply.json()["error"] == (
        'invalid request: send {"request_id": ..., "label": ...} or {"labels": [...]}'
    )
    reply = await served.client.post("/api/feedback/iris", json={"request_id": 5, "label": 1})
    assert reply.json()["error"] == "invalid request: request_id: Input should be a valid string"
    # A label sent as null is there: "label is missing" told the client it forgot the field.
    reply = await served.client.post("/api/feedback/iris", json={"request_id": "a"})
    assert reply.json()["error"] == "invalid request: label is missing"
    reply = await served.client.post("/api/feedback/iris", json={"request_id": "a", "label": None})
    assert reply.status_code == 422
    assert reply.json()["error"] == (
        "invalid request: label is null: send the true value, or leave the request out until "
        "it is known"
    )


async def test_a_post_of_many_malformed_labels_is_told_the_first_few_and_how_many_more(
    served: Served,
) -> None:
    """Every one of pydantic's errors was listed: 100,000 labels with numbers for ids were
    answered with a 5.7 MB line."""
    labels = [{"request_id": i, "label": 0} for i in range(100_000)]
    reply = await served.client.post("/api/feedback/iris", json={"labels": labels})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert len(error) < 1000, len(error)
    assert error.startswith("invalid request: labels.0.request_id: Input should be a valid string;")
    assert "labels.4.request_id" in error and "labels.5.request_id" not in error
    assert error.endswith("; and 99995 more problems")


async def test_two_different_labels_for_one_request_in_one_call_are_refused(
    served: Served,
) -> None:
    """The labels were made a dict by request id: the last of two silently won."""
    ids = await send(served.client, np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]), 1)
    served.monitor.flush()
    labels = [
        {"request_id": ids[0], "label": 0},
        {"request_id": ids[1], "label": 2},
        {"request_id": ids[0], "label": 1},
    ]
    reply = await served.client.post("/api/feedback/iris", json={"labels": labels})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error.startswith(f"labels[0] and labels[2] give request {ids[0]!r} different labels")
    performance = (await served.client.get("/api/monitoring/iris")).json()["performance"]
    assert performance is None  # nothing was taken, not even the other request's label
    # The same label twice (a client's retry within a batch) is taken once, however it is
    # spelt: 0, 0.0 and "0" are one class, as each alone is (they were "different labels").
    for same in (0, 0.0, "0"):
        labels[2]["label"] = same
        reply = await served.client.post("/api/feedback/iris", json={"labels": labels})
        assert reply.json() == {"accepted": 2, "unknown": []}, same


async def test_a_boosters_labels_are_its_class_indexes(
    registry: Registry, iris_frame: pd.DataFrame, iris_target: np.ndarray, tmp_path: Path
) -> None:
    """A booster says no classes the way scikit-learn does (``classes_``): a 5, a "yes" or a
    true for a LightGBM of three classes was taken, counted as a wrong prediction and as a
    class of its own in F1 (0.51 to 0.38 in a tester's run), and dropped AUC."""
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1},
        lgb.Dataset(iris_frame.to_numpy(), iris_target),
        num_boost_round=5,
    )
    path = tmp_path / "iris.txt"
    booster.save_model(path)
    reference = iris_frame.assign(species=iris_target)
    register_model(registry, "iris", path, reference=reference, target="species")
    async with monitored(registry) as served:
        ids = await send(served.client, iris_frame.to_numpy()[:2], per_request=1)
        served.monitor.flush()
        for label, shown in [(5, "5"), ("yes", '"yes"'), (True, "true")]:
            reply = await served.client.post(
                "/api/feedback/iris", json={"request_id": ids[0], "label": label}
            )
            assert reply.status_code == 422, (label, reply.text)
            error = reply.json()["error"]
            assert f"label {shown} is not one of the model's classes (0, 1, 2)" in error
        labels = [{"request_id": i, "label": v} for i, v in zip(ids, [0, "0"], strict=True)]
        reply = await served.client.post("/api/feedback/iris", json={"labels": labels})
        assert reply.json() == {"accepted": 2, "unknown": []}
