"""Triton's statistics extension, read by tritonclient over HTTP and gRPC (both fronts)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.store import Registry
from modelpilot.server.grpc import create_grpc_server
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import free_port, make_settings
from tests.server.conftest import LoopThread, serve_http

ROW = np.array([[5.1, 3.5, 1.4, 0.2]])


@dataclass
class Clients:
    http: httpclient.InferenceServerClient
    grpc: grpcclient.InferenceServerClient
    url: str


@pytest.fixture(params=["native", "grpcio"])
def clients(
    request: pytest.FixtureRequest,
    served_registry: Registry,
    iris_model_path: Path,
    loop_thread: LoopThread,
) -> Iterator[Clients]:
    yield from serve_clients(request.param, served_registry, iris_model_path, loop_thread)


@pytest.fixture
def cached_clients(
    served_registry: Registry, iris_model_path: Path, loop_thread: LoopThread
) -> Iterator[Clients]:
    yield from serve_clients(
        "native", served_registry, iris_model_path, loop_thread, result_cache="memory"
    )


def serve_clients(
    grpc_server: str,
    served_registry: Registry,
    iris_model_path: Path,
    loop_thread: LoopThread,
    **overrides: Any,
) -> Iterator[Clients]:
    register_model(served_registry, "iris", iris_model_path)  # version 2, beside 1
    port = free_port()
    settings = make_settings(served_registry, http_port=port, grpc_server=grpc_server, **overrides)
    engine = InferenceEngine(served_registry, settings)
    loop_thread.run(engine.start())
    monitoring = ProcessMonitoring.for_engine(engine, settings)

    async def serve_grpc() -> tuple[Any, int]:
        server, grpc_port = create_grpc_server(
            engine, settings, host="127.0.0.1", port=0, monitoring=monitoring
        )
        await server.start()
        return server, grpc_port

    grpc_server, grpc_port = loop_thread.run(serve_grpc())
    stop = serve_http(loop_thread, create_app(engine, settings, monitoring), port)
    http = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    yield Clients(http, grpc, f"http://127.0.0.1:{port}")
    http.close()
    grpc.close()
    stop()
    loop_thread.run(grpc_server.stop(1))
    loop_thread.run(engine.stop())
    monitoring.stop()


def rows_input(rows: np.ndarray) -> httpclient.InferInput:
    tensor = httpclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    return tensor


def test_each_version_counts_its_requests_rows_calls_and_time(clients: Clients) -> None:
    started = time.time()
    for _ in range(3):
        clients.http.infer("iris", [rows_input(np.repeat(ROW, 4, axis=0))], model_version="2")
    clients.http.infer("iris", [rows_input(ROW)], model_version="1")
    with pytest.raises(InferenceServerException):  # refused by version 2: its failure
        clients.http.infer("iris", [rows_input(ROW[:, :3])], model_version="2")

    stats = clients.http.get_inference_statistics("iris")["model_stats"]
    by_version = {s["version"]: s for s in stats}
    assert set(by_version) == {"1", "2"}
    two = by_version["2"]
    assert (two["inference_count"], two["execution_count"]) == (12, 3)  # rows, model calls
    infer = two["inference_stats"]
    assert infer["success"]["count"] == 3 and infer["fail"]["count"] == 1
    assert infer["success"]["ns"] > 0 and infer["fail"]["ns"] > 0
    assert infer["queue"]["count"] == 3 and infer["compute_infer"]["count"] == 3
    assert infer["compute_infer"]["ns"] > 0
    # Triton's tools take the three compute steps to have one count (the other two untimed).
    assert infer["compute_input"] == infer["compute_output"] == {"count": 3, "ns": 0}
    assert two["last_inference"] >= int(started * 1000) - 1000
    assert by_version["1"]["inference_count"] == 1

    one = clients.http.get_inference_statistics("iris", "1")["model_stats"]
    assert [s["version"] for s in one] == ["1"]
    everything = clients.http.get_inference_statistics()["model_stats"]
    assert {(s["name"], s["version"]) for s in everything} >= {
        ("iris", "1"),
        ("iris", "2"),
        ("forest", "1"),  # served, not yet asked: there, with nothing counted
    }

    # gRPC, read with Triton's own message definitions: the same numbers.
    response = clients.grpc.get_inference_statistics("iris", "2")
    (grpc_two,) = response.model_stats
    assert (grpc_two.name, grpc_two.version) == ("iris", "2")
    assert (grpc_two.inference_count, grpc_two.execution_count) == (12, 3)
    assert grpc_two.inference_stats.success.count == 3
    assert grpc_two.inference_stats.fail.count == 1
    assert grpc_two.inference_stats.compute_infer.count == 3


def test_result_cache_hits_and_misses_are_counted_per_version(cached_clients: Clients) -> None:
    other = ROW + 1.0
    for rows in (ROW, ROW, ROW, other):
        cached_clients.http.infer("iris", [rows_input(rows)], model_version="2")

    (two,) = cached_clients.http.get_inference_statistics("iris", "2")["model_stats"]
    infer = two["inference_stats"]
    assert infer["cache_hit"]["count"] == 2 and infer["cache_miss"]["count"] == 2
    assert infer["cache_hit"]["ns"] > 0 and infer["cache_miss"]["ns"] > 0
    assert infer["success"]["count"] == 4
    assert two["execution_count"] == 2  # the model ran for the misses alone
    (grpc_two,) = cached_clients.grpc.get_inference_statistics("iris", "2").model_stats
    assert grpc_two.inference_stats.cache_hit.count == 2
    assert grpc_two.inference_stats.cache_miss.count == 2


def test_statistics_of_a_model_or_version_not_served_are_not_found(clients: Clients) -> None:
    with pytest.raises(InferenceServerException, match="no model named 'nope'"):
        clients.http.get_inference_statistics("nope")
    with pytest.raises(InferenceServerException, match="version"):
        clients.grpc.get_inference_statistics("iris", "9")
    assert "statistics" in clients.http.get_server_metadata()["extensions"]
    assert "statistics" in clients.grpc.get_server_metadata().extensions


def test_the_answer_is_the_one_the_openapi_document_gives(clients: Clients) -> None:
    spec = httpx.get(f"{clients.url}/openapi.json").json()
    documented = spec["paths"]["/v2/models/{name}/stats"]["get"]["responses"]["200"]
    body = httpx.get(f"{clients.url}/v2/models/iris/stats").json()
    jsonschema.validate(body, documented["content"]["application/json"]["schema"])
    assert [s["version"] for s in body["model_stats"]] == ["1"]  # served, at production
