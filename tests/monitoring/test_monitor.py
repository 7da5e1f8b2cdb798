"""The monitor end to end in one process: traffic in over REST, drift, labels, alerts out."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring import monitor_thread
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import LogBatch
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings
from tests.monitoring.conftest import (
    SHIFTED,
    Served,
    reference_traffic,
    send,
    shifted_traffic,
)


def gauge(metrics: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{"):
            head, value = line.rsplit(" ", 1)
            found = dict(
                part.split("=", 1) for part in head[len(name) + 1 : -1].split(",") if "=" in part
            )
            if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
                return float(value)
    raise AssertionError(f"no sample {name}{{{selector}}} in /metrics")


async def test_only_shifted_features_drift_and_alerts_say_so(
    served: Served, iris_frame: pd.DataFrame
) -> None:
    client, monitor = served.client, served.monitor
    await send(client, reference_traffic(iris_frame, 400, seed=1))
    monitor.flush()
    calm = (await client.get("/api/monitoring/iris")).json()
    assert calm["drift"]["window_rows"] >= 400
    assert calm["drift"]["drifted_features"] == []
    assert calm["drift"]["dataset_drift"] is False
    assert (await client.get("/api/alerts")).json()["active"] == []

    await send(client, shifted_traffic(iris_frame, 500, seed=2))
    monitor.flush()
    report = (await client.get("/api/monitoring/iris")).json()
    assert report["drift"]["drifted_features"] == SHIFTED
    by_name = {f["name"]: f for f in report["drift"]["features"]}
    for name in SHIFTED:
        assert by_name[name]["method"] == "ks" and by_name[name]["p_value"] < 1e-6
        # Each of the four features' two tests at 0.01 / 8 (Bonferroni), and over the 12
        # looks a window of 400 rows gets as it fills and slides (sizes 30, 60, 120, 240 on).
        level = 0.01 / 8 / 12
        assert by_name[name]["score"] > by_name[name]["threshold"] == pytest.approx(1 - level)
        assert by_name[name]["psi"] > 1.0
    for name in ("petal_length", "petal_width"):
        assert not by_name[name]["drifted"] and by_name[name]["psi"] < 0.2
    assert report["drift"]["dataset_drift"] is True  # 2 of 4 reaches the default share 0.5

    metrics = (await client.get("/metrics")).text
    for name in SHIFTED:
        assert gauge(metrics, "modelpilot_feature_drifted", model="iris", feature=name) == 1
    assert gauge(metrics, "modelpilot_feature_drifted", model="iris", feature="petal_width") == 0
    assert gauge(metrics, "modelpilot_dataset_drift", model="iris", version="1") == 1
    assert (
        gauge(metrics, "modelpilot_feature_drift_score", feature="sepal_length", method="psi") > 1.0
    )
    labels = {"rule": "data_drift", "model": "iris", "version": "1", "severity": "warning"}
    assert gauge(metrics, "modelpilot_alert_active", **labels) == 1

    active = (await client.get("/api/alerts")).json()["active"]
    assert [(a["rule"], a["model"]) for a in active] == [("data_drift", "iris:1")]
    assert "sepal_length, sepal_width" in active[0]["message"]


async def test_wrong_labels_drop_accuracy_and_raise_concept_drift(
    served: Served, iris_frame: pd.DataFrame
) -> None:
    client, monitor = served.client, served.monitor
    rows = reference_traffic(iris_frame, 60, seed=3)
    responses = []
    for row in rows:
        response = await client.post("/predict/iris", json={"data": row.tolist()})
        responses.append(response.json())
    monitor.flush()
    reference = monitor.model_monitor("iris", 1)
    assert reference is not None and reference.performance.reference["accuracy"] > 0.9

    # First a window where the labels agree with the model: quality holds.
    right = {r["id"]: r["predictions"][0] for r in responses[:30]}
    reply = await client.post(
        "/api/feedback/iris",
        json={"labels": [{"request_id": k, "label": v} for k, v in right.items()]},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"accepted": 30, "unknown": []}
    good = (await client.get("/api/monitoring/iris")).json()["performance"]
    assert good["current"]["accuracy"] == 1.0 and good["concept_drift"] is False

    # Then labels that say the model was wrong every time, one at a time.
    for response in responses[30:]:
        wrong = (int(response["predictions"][0]) + 1) % 3
        reply = await client.post(
            "/api/feedback/iris", json={"request_id": response["id"], "label": wrong}
        )
        assert reply.status_code == 200
    performance = (await client.get("/api/monitoring/iris")).json()["performance"]
    assert performance["labels"] == 60
    assert performance["current"]["accuracy"] == pytest.approx(0.5)
    assert performance["concept_drift"] is True and "accuracy" in performance["degraded"]

    active = (await client.get("/api/alerts")).json()["active"]
    assert ("concept_drift", "iris:1") in [(a["rule"], a["model"]) for a in active]
    metrics = (await client.get("/metrics")).text
    assert gauge(metrics, "modelpilot_model_performance", metric="accuracy") == pytest.approx(0.5)
    assert gauge(metrics, "modelpilot_concept_drift", model="iris") == 1
    assert gauge(metrics, "modelpilot_labels_total", model="iris") == 60


async def test_feedback_errors_are_clear(served: Served) -> None:
    client = served.client
    unknown = await client.post("/api/feedback/iris", json={"request_id": "nope", "label": 1})
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["error"]
    malformed = await client.post("/api/feedback/iris", json={"label": 1})
    assert malformed.status_code == 422
    assert "request_id" in malformed.json()["error"]
    ids = await send(client, np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]), 2)
    mismatch = await client.post("/api/feedback/iris", json={"request_id": ids[0], "label": 0})
    assert mismatch.status_code == 422  # labels that do not fit, as a wrong kind of label is
    assert "2 row(s) but got 1 label" in mismatch.json()["error"]
    for label in ([0, None], [0, {"class": 2}]):
        refused = await client.post(
            "/api/feedback/iris", content=json.dumps({"request_id": ids[0], "label": label})
        )
        assert refused.status_code == 422 and "is not a class" in refused.json()["error"]
    both = await client.post("/api/feedback/iris", json={"request_id": ids[0], "label": [0, 2]})
    assert both.json() == {"accepted": 2, "unknown": []}


async def test_feedback_is_read_as_json_whatever_its_content_type(served: Served) -> None:
    """`curl -d`, as the README and the demo write it, sends form-encoded content."""
    client = served.client
    ids = await send(client, np.array([[5.1, 3.5, 1.4, 0.2]] * 2), per_request=1)
    form = {"content-type": "application/x-www-form-urlencoded"}
    one = json.dumps({"request_id": ids[0], "label": 0})
    reply = await client.post("/api/feedback/iris", content=one, headers=form)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"accepted": 1, "unknown": []}
    many = json.dumps({"labels": [{"request_id": ids[1], "label": 1}]})
    reply = await client.post("/api/feedback/iris", content=many)  # no content type at all
    assert reply.json() == {"accepted": 1, "unknown": []}
    assert (await client.get("/api/monitoring/iris")).json()["performance"]["labels"] == 2

    not_json = await client.post("/api/feedback/iris", content="request_id=x&label=0", headers=form)
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]
    neither = await client.post("/api/feedback/iris", content=json.dumps({"label": 1}))
    assert neither.status_code == 422
    assert "request_id" in neither.json()["error"]


async def test_monitoring_can_be_switched_off(labelled_iris: Registry) -> None:
    settings = make_settings(labelled_iris, monitoring=False)
    engine = InferenceEngine(labelled_iris, settings)
    monitoring = ProcessMonitoring.for_engine(engine, settings)
    assert monitoring.monitor is None
    await engine.start()
    app = create_app(engine, settings, monitoring)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        assert (await client.post("/predict/iris", json={"data": [5.1, 3.5, 1.4, 0.2]})).is_success
        off = await client.get("/api/alerts")
        assert off.status_code == 404 and "monitoring is off" in off.json()["error"]
        # The page too: it drew nothing and retried forever, saying "HTTP 404".
        page = await client.get("/dashboard")
        assert page.status_code == 404 and "monitoring is off" in page.json()["error"]
        assert "modelpilot_requests_total" in (await client.get("/metrics")).text
    await engine.stop()
    assert not (Path(labelled_iris.location) / "inference-log.db").exists()


async def test_a_monitor_built_by_hand_watches_calls_and_requests(labelled_iris: Registry) -> None:
    engine = InferenceEngine(labelled_iris, make_settings(labelled_iris))
    await engine.start()
    monitor = Monitor(labelled_iris)
    monitor.watch(engine)
    rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]
    try:
        for row in rows:
            await engine.infer("iris", request_from_rows(row))
        await asyncio.to_thread(monitor.flush)
        drift = monitor.report("iris").drift
        assert drift is not None and drift.rows == len(rows)  # the model calls
        assert [p.requests for p in monitor.history.points] == [len(rows)]  # the requests
    finally:
        await asyncio.to_thread(monitor.stop)
        await engine.stop()


def test_a_full_queue_drops_work_instead_of_growing(labelled_iris: Registry) -> None:
    monitor = Monitor(labelled_iris, max_queue=3)
    version = labelled_iris.get_version("iris", 1)
    rows = {"input-0": np.array([[5.1, 3.5, 1.4, 0.2]])}
    for i in range(5):
        monitor.predicted(version, [f"r{i}"], [1], rows, {"predict": np.array([0])})
    assert monitor.dropped == 2
    monitor.flush()
    assert monitor.report("iris").requests == 3
    monitor.stop()


def test_metrics_stated_at_registration_are_the_reference(
    registry: Registry, iris_model_path: Path
) -> None:
    version = register_model(registry, "stated", iris_model_path, metadata={"accuracy": 0.95})
    monitor = Monitor(registry)
    monitor.predicted(
        version,
        ["r1"],
        [1],
        {"input-0": np.array([[5.1, 3.5, 1.4, 0.2]])},
        {"predict": np.array([0])},
    )
    monitor.flush()
    watched = monitor.model_monitor("stated", 1)
    assert watched is not None and watched.performance.reference == {"accuracy": 0.95}
    monitor.stop()


def test_a_metric_stated_beside_labelled_reference_data_wins(
    registry: Registry, iris_model_path: Path, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> None:
    """Measured on rows the model trained on, a figure flatters it; one stated at
    registration (from held-out rows, say) is what live quality is judged against."""
    reference = iris_frame.assign(species=iris_target)
    version = register_model(
        registry,
        "stated",
        iris_model_path,
        reference=reference,
        target="species",
        metadata={"accuracy": 0.9},
    )
    measured = version.metadata["reference_metrics"]
    assert measured["accuracy"] > 0.95  # its own training rows
    monitor = Monitor(registry)
    monitor.predicted(
        version, ["r1"], [1], {"input-0": iris_frame.to_numpy()[:1]}, {"predict": np.array([0])}
    )
    monitor.flush()
    watched = monitor.model_monitor("stated", 1)
    assert watched is not None
    assert watched.performance.reference == {**measured, "accuracy": 0.9}
    monitor.stop()


IRIS_ROWS = np.array(
    [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3], [5.9, 3.0, 5.1, 1.8], [4.9, 3.0, 1.4, 0.2]]
)


def test_a_batch_larger_than_the_drift_window_fills_it_only_to_its_size(
    labelled_iris: Registry,
) -> None:
    monitor = Monitor(labelled_iris, MonitorConfig(window_rows=100))
    version = labelled_iris.get_version("iris", 1)
    rows = np.repeat(IRIS_ROWS, 75, axis=0)  # 300 rows: 75 of each, classes 0 2 2 0
    predict = np.repeat([0, 2, 2, 0], 75)
    monitor.predicted(version, ["big"], [300], {"input-0": rows}, {"predict": predict})
    monitor.predicted(version, ["one"], [1], {"input-0": rows[:1]}, {"predict": predict[:1]})
    monitor.flush()
    report = monitor.report("iris")
    assert (report.requests, report.rows) == (2, 301)
    assert report.drift is not None and report.drift.rows == 100  # not 301
    assert report.predictions is not None and report.predictions.count == 100
    # The window's classes: the last 100 of the 301 rows (the round joined the two calls).
    assert report.predictions.classes == {"0": 76, "1": 0, "2": 24}
    assert report.classes_total == {"0": 151, "1": 0, "2": 150}  # since start: every row
    monitor.stop()


@pytest.mark.parametrize("in_process", [True, False], ids=["thread", "process"])
@pytest.mark.parametrize("logged", [True, False], ids=["log", "memory"])
def test_requests_sharing_a_model_call_are_logged_and_labelled_apart(
    labelled_iris: Registry, logged: bool, in_process: bool
) -> None:
    log = InferenceLog(labelled_iris.companion_engine("inference-log")) if logged else None
    if in_process:
        monitor = Monitor(labelled_iris, log=log)
    else:
        spec = TapSpec(labelled_iris.address(), MonitorConfig(), inference_log=logged)
        monitor = Monitor(labelled_iris, tap=TapProcess(spec))
    version = labelled_iris.get_version("iris", 1)
    predict = np.array([0, 2, 2, 0])
    # One call of three requests (the second has two rows), then a call of one.
    monitor.predicted(
        version, ["a", "b", "c"], [1, 2, 1], {"input-0": IRIS_ROWS}, {"predict": predict}
    )
    monitor.predicted(version, ["d"], [1], {"input-0": IRIS_ROWS[:1]}, {"predict": predict[:1]})
    monitor.flush()
    report = monitor.report("iris")
    assert (report.requests, report.rows) == (4, 5)
    if log is not None:
        found = log.find("iris", ["a", "b", "c", "d"])
        assert found["b"].inputs == {"input-0": IRIS_ROWS[1:3].tolist()}
        assert found["b"].outputs == {"predict": [2, 2]}
        assert found["c"].inputs == {"input-0": IRIS_ROWS[3:].tolist()}
        assert found["d"].outputs == {"predict": [0]}
    result = monitor.feedback("iris", {"b": [2, 1], "c": 0, "d": 1})
    assert (result.accepted, result.unknown) == (4, [])
    performance = monitor.report("iris").performance
    assert performance is not None and performance.labels == 4
    assert performance.current["accuracy"] == 0.5  # b's first row and c right; b's second, d wrong
    monitor.stop()


def test_a_label_posted_again_replaces_the_first(labelled_iris: Registry) -> None:
    # A client that retries its POST, or corrects a label, must not count a row twice.
    monitor = Monitor(labelled_iris)
    version = labelled_iris.get_version("iris", 1)
    predict = np.array([0, 2, 2, 0])
    monitor.predicted(
        version, ["a", "b", "c"], [1, 2, 1], {"input-0": IRIS_ROWS}, {"predict": predict}
    )
    monitor.flush()
    assert monitor.feedback("iris", {"a": 0, "b": [2, 2], "c": 1}).accepted == 4
    assert monitor.feedback("iris", {"a": 0, "c": 1}).accepted == 2  # a retry
    performance = monitor.report("iris").performance
    assert performance is not None and performance.labels == 4
    assert performance.current["accuracy"] == 0.75  # c wrong
    monitor.feedback("iris", {"c": 0, "b": [2, 1]})  # corrections: c right, b's second wrong
    monitor_of_version = monitor.model_monitor("iris", 1)
    assert monitor_of_version is not None
    # Corrected rows move to the window's end; rows labelled again as they were stay put.
    assert [row.truth for row in monitor_of_version.performance.rows()] == [0, 2, 0, 1]
    performance = monitor.report("iris").performance
    assert performance is not None and performance.labels == 4
    assert performance.current["accuracy"] == 0.75
    monitor.stop()


def watched_predictions(registry: Registry, count: int) -> tuple[Monitor, list[str]]:
    """A monitor that has seen ``count`` one-row predictions of iris:1, ids r0, r1, ..."""
    monitor = Monitor(registry)
    version = registry.get_version("iris", 1)
    ids = [f"r{i}" for i in range(count)]
    rows = np.tile(IRIS_ROWS[:1], (count, 1))
    predict = {"predict": np.zeros(count)}
    monitor.predicted(version, ids, [1] * count, {"input-0": rows}, predict)
    monitor.flush()
    return monitor, ids


def test_labels_read_the_registry_once_per_version_not_once_each(
    labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read per label, 20,000 labels in one call took 12 s, nearly all of it in the registry.
    monitor, ids = watched_predictions(labelled_iris, 500)
    reads = []
    read = labelled_iris.get_version

    def counted(model: str, number: int) -> ModelVersion:
        reads.append((model, number))
        return read(model, number)

    monkeypatch.setattr(labelled_iris, "get_version", counted)
    assert monitor.feedback("iris", dict.fromkeys(ids, 0)).accepted == 500
    assert len(reads) <= 1
    monitor.stop()


def test_labels_recompute_the_reports_without_cutting_the_service_history(
    labelled_iris: Registry,
) -> None:
    # Each feedback call closed a service interval: a client posting labels one by one, 50
    # times a second, left the dashboard 300 points of 20 ms (six seconds of history), and
    # put off the thread's evaluation for as long as it posted.
    monitor, ids = watched_predictions(labelled_iris, 50)
    points, evaluated = len(monitor.history.points), monitor._last_evaluation
    for request_id in ids:
        monitor.feedback("iris", {request_id: 0})
    assert len(monitor.history.points) == points
    assert monitor._last_evaluation == evaluated
    performance = monitor.report("iris").performance
    assert performance is not None and performance.labels == 50  # the reports are current
    monitor.stop()


class _GatedLog(InferenceLog):
    """The real log, holding each write until the test lets it through."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry.companion_engine("inference-log"))
        self.writing = threading.Event()
        self.go_on = threading.Event()

    def append(self, items: Sequence[LogBatch]) -> None:
        self.writing.set()
        assert self.go_on.wait(10)
        super().append(items)


def test_labels_wait_for_a_log_write_already_under_way(labelled_iris: Registry) -> None:
    log = _GatedLog(labelled_iris)
    monitor = Monitor(labelled_iris, log=log, tick_seconds=0.01)
    version = labelled_iris.get_version("iris", 1)
    monitor.predicted(version, ["a"], [1], {"input-0": IRIS_ROWS[:1]}, {"predict": np.array([0])})
    monitor.start()
    # The monitor thread has taken the request off the queue and is writing it to the log.
    assert log.writing.wait(10)
    with ThreadPoolExecutor(1) as pool:
        labelled = pool.submit(monitor.feedback, "iris", {"a": 0})
        time.sleep(0.05)
        assert not labelled.done()  # it waits for the write rather than miss the request
        log.go_on.set()
        result = labelled.result(timeout=10)
    assert (result.accepted, result.unknown) == (1, [])
    monitor.stop()


def _one_request(monitor: Monitor, version: ModelVersion, request_id: str) -> None:
    monitor.predicted(
        version, [request_id], [1], {"input-0": IRIS_ROWS[:1]}, {"predict": np.array([0])}
    )


def test_calls_made_off_any_event_loop_are_handed_over_by_the_thread_promptly(
    labelled_iris: Registry,
) -> None:
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    # Evaluations a minute apart: the calls must not wait for the next one.
    monitor = Monitor(labelled_iris, tap=tap, evaluate_seconds=60.0, tick_seconds=0.05)
    monitor.start()
    try:
        _one_request(monitor, labelled_iris.get_version("iris", 1), "off-loop")
        deadline = time.monotonic() + 10
        while not tap.lookup("iris", ["off-loop"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "off-loop" in tap.lookup("iris", ["off-loop"])
    finally:
        monitor.stop()


def test_the_thread_sleeps_between_evaluations_while_the_loop_hands_calls_over(
    labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    monitor = Monitor(
        labelled_iris, tap=tap, evaluate_seconds=1.0, tick_seconds=0.02, round_seconds=0.02
    )
    wakes = 0
    pause = monitor_thread.pause

    def counted(watched: Monitor) -> float:
        nonlocal wakes
        wakes += 1
        return pause(watched)

    monkeypatch.setattr(monitor_thread, "pause", counted)
    version = labelled_iris.get_version("iris", 1)

    async def traffic() -> None:
        for i in range(120):  # 1.2 s
            _one_request(monitor, version, f"r{i}")
            await asyncio.sleep(0.01)

    monitor.start()
    try:
        started = time.monotonic()
        asyncio.run(traffic())
        elapsed = time.monotonic() - started
        # A wake every tick would be 50 a second; evaluations are 1 s apart.
        assert wakes <= elapsed / monitor.evaluate_seconds + 3
        monitor.flush()
        assert monitor.report("iris").requests == 120
    finally:
        monitor.stop()
