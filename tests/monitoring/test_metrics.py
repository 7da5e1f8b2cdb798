"""Service, engine and system metrics, read back from the registry and from /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from modelpilot.config import Settings
from modelpilot.errors import BadRequest, InvalidInput, ModelNotFound
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.monitoring.service import BATCH_BUCKETS, LATENCY_BUCKETS, ServiceMetrics
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.server.grpc import codec
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.servicer import InferenceServicer
from modelpilot.server.rest import create_app, handlers
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings
from tests.monitoring.conftest import send, shifted_traffic


@pytest.fixture
async def watched(
    served_registry: Registry,
) -> AsyncIterator[tuple[InferenceEngine, ProcessMonitoring]]:
    engine = InferenceEngine(served_registry, make_settings(served_registry, result_cache="memory"))
    metrics = ProcessMonitoring.for_engine(engine)
    await engine.start()
    yield engine, metrics
    await engine.stop()
    metrics.stop()


def rest_client(
    engine: InferenceEngine,
    metrics: ProcessMonitoring,
    settings: Settings | None = None,
    raise_app_exceptions: bool = True,
) -> httpx.AsyncClient:
    """A client of the REST app over ``engine`` and ``metrics``, in process."""
    app = create_app(engine, settings or engine.settings, metrics)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_requests_errors_batches_and_state_are_counted(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    engine, metrics = watched
    value = metrics.registry.get_sample_value
    for _ in range(3):
        await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]), transport="rest")
    with pytest.raises(InvalidInput):
        await engine.infer("iris", request_from_rows([1.0, 2.0]), transport="grpc")
    ok = {"model": "iris", "version": "1", "transport": "rest", "status": "ok"}
    assert value("modelpilot_requests_total", ok) == 3
    bad = {"model": "iris", "version": "1", "transport": "grpc", "status": "422"}
    iris = {"model": "iris", "version": "1"}  # refused by the version chosen
    assert value("modelpilot_requests_total", bad) == 1
    assert value("modelpilot_errors_total", {**iris, "kind": "InvalidInput"}) == 1
    latency = {"model": "iris", "version": "1", "transport": "rest"}
    assert value("modelpilot_request_duration_seconds_count", latency) == 3
    assert value("modelpilot_inflight_requests", {"model": "iris"}) == 0
    # The first request ran the model; the other two came from the result cache.
    assert value("modelpilot_batch_size_rows_count", {"model": "iris", "version": "1"}) == 1
    assert value("modelpilot_queue_duration_seconds_count", {"model": "iris", "version": "1"}) == 1
    assert value("modelpilot_result_cache_hits_total", iris) == 2
    assert value("modelpilot_result_cache_misses_total", iris) == 1
    assert value("modelpilot_result_cache_duration_seconds_total", {**iris, "result": "hit"}) > 0
    assert value("modelpilot_model_loaded", {"model": "iris", "version": "1"}) == 1
    assert value("modelpilot_model_loaded", {"model": "forest", "version": "1"}) == 1
    assert value("modelpilot_uptime_seconds") >= 0
    assert value("modelpilot_process_resident_memory_bytes") > 10_000_000
    # Not ..._cpu_count: promtool's lint reserves _count for histograms and summaries.
    assert value("modelpilot_system_cpus") >= 1


async def test_requests_for_models_that_do_not_exist_share_one_label(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    engine, metrics = watched
    for name in ("nope", "made-up-1", "made-up-2"):
        with pytest.raises(ModelNotFound):
            await engine.infer(name, request_from_rows([1.0, 2.0]), transport="rest")
    value = metrics.registry.get_sample_value
    unknown = {"model": "(unknown)", "version": "unknown", "transport": "rest", "status": "404"}
    assert value("modelpilot_requests_total", unknown) == 3
    unknown_model = {"model": "(unknown)", "version": "unknown", "kind": "ModelNotFound"}
    assert value("modelpilot_errors_total", unknown_model) == 3
    exposed = generate_latest(metrics.registry).decode()
    assert "made-up" not in exposed and "nope" not in exposed
    assert engine.inflight == {}
    await engine.unload_model("forest")  # a model of ours keeps its name
    with pytest.raises(ModelNotFound, match="was unloaded"):
        await engine.infer("forest", request_from_rows([1.0, 2.0]), transport="rest")
    forest = {"model": "forest", "version": "unknown", "kind": "ModelNotFound"}
    assert value("modelpilot_errors_total", forest) == 1


async def test_a_versions_failures_count_from_zero_from_its_first_request(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    """A series that appears with its first failure shows no rise to ``rate()``: one request
    past its deadline made modelpilot_timeouts_total 1 and ``increase()`` over it 0, and the
    alerting rules missed a scrape or more of every new kind of failure."""
    engine, metrics = watched
    value = metrics.registry.get_sample_value
    await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]), transport="grpc")
    iris = {"model": "iris", "version": "1"}
    assert value("modelpilot_timeouts_total", iris) == 0
    for status in ("500", "503", "504"):
        labels = {**iris, "transport": "grpc", "status": status}
        assert value("modelpilot_requests_total", labels) == 0, status
    # Loaded, the version's series over REST are at 0 too, before any request over REST.
    assert value("modelpilot_requests_total", {**iris, "transport": "rest", "status": "500"}) == 0
    with pytest.raises(ModelNotFound):
        await engine.infer("nope", request_from_rows([1.0, 2.0]), transport="rest")
    unknown = {"model": "(unknown)", "version": "unknown"}
    assert value("modelpilot_timeouts_total", unknown) is None
    for status in ("500", "503", "504"):
        labels = {**unknown, "transport": "rest", "status": status}
        assert value("modelpilot_requests_total", labels) is None, status


async def test_metrics_endpoint_serves_the_text_format(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    engine, metrics = watched
    async with rest_client(engine, metrics) as client:
        await client.post("/predict/iris", json={"data": [5.1, 3.5, 1.4, 0.2]})
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'modelpilot_requests_total{model="iris",status="ok",transport="rest",version="1"} 1.0'
        in text
    )
    assert "# TYPE modelpilot_request_duration_seconds histogram" in text
    assert 'le="0.0001"' in text


async def test_requests_whose_bodies_cannot_be_decoded_count_as_failed(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    engine, metrics = watched
    async with rest_client(engine, metrics) as client:
        assert (await client.post("/predict/iris", content=b"{not json")).status_code == 400
        assert (await client.post("/predict/iris", json={"rows": []})).status_code == 422
        v2 = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": "x"}]}
        assert (await client.post("/v2/models/iris/infer", json=v2)).status_code in (400, 422)
        # A made-up model, or version, is what the client hears of first, whatever the body.
        assert (await client.post("/predict/made-up", content=b"{")).status_code == 404
        bad = await client.post("/v2/models/iris/versions/99/infer", content=b"{")
        assert bad.status_code == 404
        assert "version" in bad.json()["error"]
    value = metrics.registry.get_sample_value
    rest = {"model": "iris", "version": "unknown", "transport": "rest"}
    rest_errors = {"model": "iris", "version": "unknown"}
    failed = sum(
        value("modelpilot_requests_total", {**rest, "status": status}) or 0
        for status in ("400", "422")
    )
    assert failed == 3
    assert value("modelpilot_errors_total", {**rest_errors, "kind": "BadRequest"}) >= 1
    unknown_model = {"model": "(unknown)", "version": "unknown", "kind": "ModelNotFound"}
    assert value("modelpilot_errors_total", unknown_model) == 1
    assert value("modelpilot_errors_total", {**rest_errors, "kind": "VersionNotFound"}) == 1
    assert value("modelpilot_request_duration_seconds_count", rest) == 4

    request = pb.ModelInferRequest(model_name="iris")  # 24 bytes for four 8-byte numbers
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
    request.raw_input_contents.append(b"\x00" * 24)
    with pytest.raises(BadRequest):
        await InferenceServicer(engine).ModelInfer(request)
    grpc = {"model": "iris", "version": "unknown", "transport": "grpc", "status": "400"}
    assert value("modelpilot_requests_total", grpc) == 1
    request.model_name = "made-up"
    with pytest.raises(ModelNotFound):
        await InferenceServicer(engine).ModelInfer(request)


async def test_made_up_models_share_one_label_whatever_the_version_body_or_transport(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    """With a version (valid or not), a made-up name got a series of its own: 1,000 requests
    of 120-character names took /metrics from 82 KB to 6.2 MB."""
    engine, metrics = watched
    good = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1] * 4}]}
    async with rest_client(engine, metrics) as client:
        for path, body in [
            ("/v2/models/made-up-1/versions/%C2%A2/infer", good),  # an alias no model can have
            ("/v2/models/made-up-2/versions/abc/infer", good),
            ("/v2/models/made-up-3/versions/7/infer", good),
            ("/v2/models/made-up-4/versions/%C2%A2/infer", {}),  # and a body that is no good
            ("/predict/made-up-5/versions/abc", {"data": [1, 2, 3, 4]}),
        ]:
            response = await client.post(path, json=body)
            assert response.status_code == 404, (path, response.text)
        request = pb.ModelInferRequest(model_name="made-up-6", model_version="abc")
        request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
        request.raw_input_contents.append(b"\x00" * 32)
        with pytest.raises(ModelNotFound):
            await InferenceServicer(engine).ModelInfer(request)
        exposed = (await client.get("/metrics")).text
    assert "made-up" not in exposed
    value = metrics.registry.get_sample_value
    unknown = {"model": "(unknown)", "version": "unknown", "status": "404"}
    assert value("modelpilot_requests_total", {**unknown, "transport": "rest"}) == 5
    assert value("modelpilot_requests_total", {**unknown, "transport": "grpc"}) == 1
    assert engine.inflight == {}


SHAPES_NO_ARRAY_CAN_HAVE = [[1] * 64 + [4], [0, 2**63], [0, 2**62, 2**62], [2**62, 2**62, 0]]


async def test_shapes_no_array_can_have_are_refused_and_counted(
    watched: tuple[InferenceEngine, ProcessMonitoring],
) -> None:
    """They were answered 500 with a traceback, and not counted at all."""
    engine, metrics = watched
    async with rest_client(engine, metrics) as client:
        for shape in SHAPES_NO_ARRAY_CAN_HAVE:
            data = [] if 0 in shape else [5.1, 3.5, 1.4, 0.2]
            body = {
                "inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64", "data": data}]
            }
            response = await client.post("/v2/models/iris/infer", json=body)
            assert response.status_code == 422, response.text
            assert "dimensions" in response.json()["error"]
    for shape in SHAPES_NO_ARRAY_CAN_HAVE[:1] + SHAPES_NO_ARRAY_CAN_HAVE[2:]:  # int64 dims
        request = pb.ModelInferRequest(model_name="iris")
        request.inputs.add(name="input-0", datatype="FP64", shape=shape)
        request.raw_input_contents.append(b"" if 0 in shape else b"\x00" * 32)
        with pytest.raises(InvalidInput, match="dimensions"):
            await InferenceServicer(engine).ModelInfer(request)
    value = metrics.registry.get_sample_value
    refused = {"model": "iris", "version": "unknown", "status": "422"}
    assert value("modelpilot_requests_total", {**refused, "transport": "rest"}) == 4
    assert value("modelpilot_requests_total", {**refused, "transport": "grpc"}) == 3


async def test_a_request_that_fails_unexpectedly_before_the_model_is_counted_as_500(
    watched: tuple[InferenceEngine, ProcessMonitoring], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder's bug (an error that is no ModelPilotError) went past the count: the
    request was answered 500, and the error rate never saw it."""
    engine, metrics = watched

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the decoder")

    monkeypatch.setattr(handlers, "decode_request", broken)
    monkeypatch.setattr(handlers, "request_from_rows", broken)
    monkeypatch.setattr(codec, "decode_request", broken)
    async with rest_client(engine, metrics, raise_app_exceptions=False) as client:
        v2 = await client.post("/v2/models/iris/infer", content=b"{}")
        predict = await client.post("/predict/iris", json={"data": [5.1, 3.5, 1.4, 0.2]})
        made_up = await client.post("/predict/made-up", json={"data": [5.1, 3.5, 1.4, 0.2]})
    assert [r.status_code for r in (v2, predict, made_up)] == [500, 500, 500]
    assert "a bug in the decoder" in v2.json()["error"]
    with pytest.raises(RuntimeError):
        await InferenceServicer(engine).ModelInfer(pb.ModelInferRequest(model_name="iris"))
    value = metrics.registry.get_sample_value
    failed = {"model": "iris", "version": "unknown", "status": "500"}
    assert value("modelpilot_requests_total", {**failed, "transport": "rest"}) == 2
    assert value("modelpilot_requests_total", {**failed, "transport": "grpc"}) == 1
    unknown = {"model": "(unknown)", "version": "unknown", "transport": "rest", "status": "500"}
    assert value("modelpilot_requests_total", unknown) == 1
    kind = {"model": "iris", "version": "unknown", "kind": "RuntimeError"}
    assert value("modelpilot_errors_total", kind) == 3


async def test_metrics_are_not_global() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.request_finished("m", "1", "rest", "ok", 0.01, None)
    assert (
        first.registry.get_sample_value(
            "modelpilot_requests_total",
            {"model": "m", "version": "1", "transport": "rest", "status": "ok"},
        )
        == 1
    )
    assert (
        second.registry.get_sample_value(
            "modelpilot_requests_total",
            {"model": "m", "version": "1", "transport": "rest", "status": "ok"},
        )
        is None
    )


async def test_a_failing_observer_does_not_fail_requests(
    served_registry: Registry,
) -> None:
    class Broken:
        def request_finished(self, *args: object) -> None:
            raise RuntimeError("observer bug")

        def batch_finished(self, *args: object) -> None:
            raise RuntimeError("observer bug")

        def predicted(self, *args: object) -> None:
            raise RuntimeError("observer bug")

    engine = InferenceEngine(served_registry, make_settings(served_registry), observers=[Broken()])
    await engine.start()
    try:
        response = await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))
        assert response.outputs[0].data.tolist() == [0]
    finally:
        await engine.stop()


async def test_counts_gathered_on_the_request_path_read_as_prometheus_would_have_counted() -> None:
    metrics = ServiceMetrics()
    reference = CollectorRegistry()
    latency = Histogram("latency", "", buckets=LATENCY_BUCKETS, registry=reference)
    queue = Histogram("queue", "", buckets=LATENCY_BUCKETS, registry=reference)
    rows = Histogram("rows", "", buckets=BATCH_BUCKETS, registry=reference)
    compute = Histogram("compute", "", buckets=LATENCY_BUCKETS, registry=reference)
    # Values on bucket bounds, between them, past the last one, and zero.
    seconds = [0.0, 0.0001, 0.00011, 0.001, 0.0042, 1.0, 30.0, 31.0] * 3
    for i, value in enumerate(seconds):
        metrics.request_finished("m", "1", "grpc", "ok", value, None)
        latency.observe(value)
        if i % 4 == 0:
            batch = seconds[i : i + 4]
            call = 2.0 ** -(i % 11)  # sums of these are exact, in any order
            metrics.queue_left("m", "1", batch)
            metrics.batch_finished("m", "1", len(batch) * 300, len(batch), call)
            rows.observe(len(batch) * 300)
            for _ in batch:  # the call's time, once for each request it ran
                compute.observe(call)
            for value in batch:
                queue.observe(value)
        if i == 10:  # a read in between: counts so far are flushed, later ones still add up
            metrics.registry.get_sample_value("modelpilot_requests_total")

    assert histogram(
        metrics.registry, "modelpilot_request_duration_seconds", model="m", version="1"
    ) == (histogram(reference, "latency"))
    assert histogram(
        metrics.registry, "modelpilot_queue_duration_seconds", model="m", version="1"
    ) == (histogram(reference, "queue"))
    assert histogram(metrics.registry, "modelpilot_batch_size_rows", model="m", version="1") == (
        histogram(reference, "rows")
    )
    assert histogram(
        metrics.registry, "modelpilot_model_call_duration_seconds", model="m", version="1"
    ) == (histogram(reference, "compute"))
    ok = {"model": "m", "version": "1", "transport": "grpc", "status": "ok"}
    assert metrics.registry.get_sample_value("modelpilot_requests_total", ok) == len(seconds)


def histogram(registry: CollectorRegistry, name: str, **labels: str) -> dict[str, float]:
    """The bucket, sum and count samples of one histogram series, by suffix and bound."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            suffix = sample.name.removeprefix(name)
            if suffix not in ("_bucket", "_sum", "_count") or sample.name == suffix:
                continue
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                found[suffix + sample.labels.get("le", "")] = sample.value
    return found


async def test_latency_queueing_batches_and_errors_are_told_apart_by_version(
    served_registry: Registry, iris_model_path: Path
) -> None:
    """Two versions of one model side by side (a canary beside its champion): each version's
    own latency, queueing, batch sizes and errors, not one blend of both."""
    register_model(served_registry, "iris", iris_model_path)  # version 2
    engine = InferenceEngine(served_registry, make_settings(served_registry))
    metrics = ProcessMonitoring.for_engine(engine)
    await engine.start()
    try:
        for version, count in (("1", 2), ("2", 3)):
            for _ in range(count):
                row = request_from_rows([5.1, 3.5, 1.4, 0.2])
                await engine.infer("iris", row, version=version, transport="rest")
        with pytest.raises(InvalidInput):
            await engine.infer("iris", request_from_rows([1.0]), version="2", transport="rest")
    finally:
        await engine.stop()
        metrics.stop()
    value = metrics.registry.get_sample_value
    for version, count in (("1", 2), ("2", 4)):
        latency = {"model": "iris", "version": version, "transport": "rest"}
        assert value("modelpilot_request_duration_seconds_count", latency) == count
    for version, calls in (("1", 2), ("2", 3)):
        labels = {"model": "iris", "version": version}
        assert value("modelpilot_batch_size_rows_count", labels) == calls
        assert value("modelpilot_queue_duration_seconds_count", labels) == calls
        assert value("modelpilot_model_call_duration_seconds_count", labels) == calls
        assert value("modelpilot_model_call_duration_seconds_sum", labels) > 0
    errors = {"model": "iris", "version": "2", "kind": "InvalidInput"}
    assert value("modelpilot_errors_total", errors) == 1
    failed = {"model": "iris", "version": "2", "transport": "rest", "status": "422"}
    assert value("modelpilot_requests_total", failed) == 1


async def test_an_emptied_drift_window_exports_no_scores_and_flags_nothing(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    """Once every row of the drift window has aged out there is nothing to compare: no score
    series, no feature tested, and the API says why. (The empty window was scored as if
    uniform: PSI 1.7-1.9 for every feature, more than while traffic flowed.) Nor is there a
    verdict that ends the drift: its alert holds, saying why, as the error rate's does on too
    few requests (test_alert_unjudged_windows.py), and the report and the verdict gauges hold
    the drift it holds (test_data_drift_held.py)."""
    # Long enough that the traffic's first rows are still in the window when it is first read
    # on a loaded machine (at 2 s, they had aged out under a load of 16 on two cores; at 5 s,
    # once in the parallel test run).
    window_seconds = 10.0
    settings = make_settings(
        labelled_iris, drift_window_seconds=window_seconds, alert_keep_firing_seconds=0.0
    )
    engine = InferenceEngine(labelled_iris, settings)
    monitoring = ProcessMonitoring.for_engine(engine, settings)
    monitor = monitoring.monitor
    assert monitor is not None
    await engine.start()
    try:
        async with rest_client(engine, monitoring, settings) as client:
            await send(client, shifted_traffic(iris_frame, 100, seed=0))
            sent = time.time()
            monitor.flush()
            during = (await client.get("/api/monitoring/iris")).json()["drift"]
            assert during["window_rows"] > 0 and during["drifted_features"]
            assert all(f["psi"] is not None for f in during["features"])
            active = (await client.get("/api/alerts")).json()["active"]
            assert [a["rule"] for a in active] == ["data_drift"]

            await asyncio.sleep(sent + window_seconds + 0.2 - time.time())
            monitor.flush()
            after = (await client.get("/api/monitoring/iris")).json()["drift"]
            text = (await client.get("/metrics")).text
            active = (await client.get("/api/alerts")).json()["active"]
    finally:
        await engine.stop()
        monitoring.stop()
    assert "modelpilot_feature_drift_score{" not in text
    drifted = during["drifted_features"]
    for feature in after["features"]:
        for key in ("psi", "js_distance", "kl_divergence", "wasserstein", "missing_share"):
            assert feature[key] is None, (feature["name"], key)
        assert feature["method"] == "none" and feature["drifted"] == (feature["name"] in drifted)
        assert feature["reason"].startswith("no rows in the window")
    assert after["window_rows"] == 0 and after["judged"] is False
    assert after["verdict"].startswith("no rows in the window; the drift last judged holds")
    assert after["drifted_features"] == drifted
    assert after["drifted_share"] == during["drifted_share"]
    assert 'modelpilot_drift_window_rows{model="iris",version="1"} 0.0' in text
    labels = 'feature="sepal_length",model="iris",version="1"'
    assert f"modelpilot_feature_drifted{{{labels}}} 1.0" in text
    assert f'modelpilot_feature_missing_share{{data="reference",{labels}}} 0.0' in text
    assert 'modelpilot_feature_missing_share{data="window"' not in text
    (held,) = active
    assert (held["rule"], held["state"]) == ("data_drift", "firing")
    assert held["message"] == (
        "no rows in the window; without a verdict the alert holds, at the value last judged"
    )
