"""Readiness while a model loads through the repository API, over gRPC and REST alike: the
model's own ready check answers "not ready" at once, and the server stays ready for the
models it serves meanwhile."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from modelpilot.registry.store import Registry
from modelpilot.server.grpc import create_grpc_server
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings
from tests.server.conftest import LoopThread

GATED_MODEL = """
import time
from pathlib import Path

GATE = Path({gate!r})
CALLED = Path({called!r})


class Model:
    \"\"\"Loads only once GATE exists (waiting up to a minute); says in CALLED that it began.\"\"\"

    signature = {{
        "inputs": [{{"name": "input-0", "datatype": "FP64", "shape": [-1, 2]}}],
        "outputs": [{{"name": "predict", "datatype": "FP64", "shape": [-1]}}],
    }}

    def load(self):
        CALLED.touch()
        deadline = time.monotonic() + 60
        while not GATE.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def predict(self, x):
        return x[:, 0]
"""

PROBE_DEADLINE = 10.0
"""Seconds a probe may take before the test gives up on it: far longer than an answer takes,
far shorter than the held load (which lasts until the test opens the gate)."""


class Servers:
    """An engine serving ``iris`` and ``gated``, with its gRPC front (``front``) and its REST
    app, in a background loop."""

    def __init__(self, registry: Registry, loop_thread: LoopThread, front: str) -> None:
        self.loop_thread = loop_thread
        # A request for a version still loading waits this long (ModelNotReady after).
        settings = make_settings(registry, grpc_server=front, request_timeout_seconds=0.5)
        self.engine = InferenceEngine(registry, settings)
        loop_thread.run(self.engine.start())

        async def serve() -> tuple[Any, int]:
            server, port = create_grpc_server(self.engine, settings, host="127.0.0.1", port=0)
            await server.start()
            return server, port

        self.grpc_server, port = loop_thread.run(serve())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.app = create_app(self.engine, settings)

    def rest(self, method: str, path: str, body: Any = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path, json=body, timeout=PROBE_DEADLINE)

        return self.loop_thread.run(call(), timeout=PROBE_DEADLINE)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.channel.close()
        self.loop_thread.run(self.grpc_server.stop(1))
        self.loop_thread.run(self.engine.stop())


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    return tmp_path / "gate"


@pytest.fixture
def called(tmp_path: Path) -> Path:
    return tmp_path / "load-called"


@pytest.fixture(params=["native", "grpcio"])
def servers(
    registry: Registry,
    iris_version: object,
    loop_thread: LoopThread,
    tmp_path: Path,
    gate: Path,
    called: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Servers]:
    source = tmp_path / "gated.py"
    source.write_text(GATED_MODEL.format(gate=str(gate), called=str(called)))
    gate.touch()  # open for the registration and the start-up load
    register_model(registry, "gated", source, flavor="python")
    made = Servers(registry, loop_thread, request.param)
    yield made
    gate.touch()  # a test that failed half-way must not leave a load waiting
    made.close()


def test_a_model_loading_is_not_ready_at_once_and_the_server_stays_ready(
    servers: Servers, gate: Path, called: Path
) -> None:
    """ModelReady and /v2/models/NAME/ready waited for the whole load (a probe with a
    deadline failed instead of hearing "not ready"), and the server answered not ready while
    one model loaded through the repository API, though it served every other one."""
    stub = servers.stub
    stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="gated"))
    gate.unlink()
    called.unlink(missing_ok=True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loading = pool.submit(
            stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="gated"), 60
        )
        try:
            deadline = time.monotonic() + 30
            while not called.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert called.exists(), "the repository load never reached the model's load()"

            ready = stub.ModelReady(pb.ModelReadyRequest(name="gated"), timeout=PROBE_DEADLINE)
            assert ready.ready is False
            answer = servers.rest("GET", "/v2/models/gated/ready")
            assert (answer.status_code, answer.json()["ready"]) == (503, False)

            # The server serves iris meanwhile, so it says it is ready.
            server = stub.ServerReady(pb.ServerReadyRequest(), timeout=PROBE_DEADLINE)
            assert server.ready is True
            assert servers.rest("GET", "/v2/health/ready").status_code == 200
            request = pb.ModelInferRequest(model_name="iris")
            request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
            request.raw_input_contents.append(np.array([[5.1, 3.5, 1.4, 0.2]]).tobytes())
            assert stub.ModelInfer(request, timeout=PROBE_DEADLINE).model_name == "iris"
            assert not loading.done()

            # A request for the version loading is told to ask its ready check, each
            # transport in its own words.
            gated = pb.ModelInferRequest(model_name="gated", model_version="1")
            gated.inputs.add(name="input-0", datatype="FP64", shape=[1, 2])
            gated.raw_input_contents.append(np.zeros((1, 2)).tobytes())
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(gated, timeout=PROBE_DEADLINE)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert str(info.value.details()).endswith(
                "it answers once loaded, as its ready check will say "
                "(gRPC ModelReady, name 'gated', version '1')"
            )
            tensor = {"name": "input-0", "datatype": "FP64", "shape": [1, 2], "data": [0, 0]}
            answer = servers.rest("POST", "/v2/models/gated/versions/1/infer", {"inputs": [tensor]})
            assert answer.status_code == 503
            assert answer.json()["error"].endswith(
                "as its ready check will say (GET /v2/models/gated/versions/1/ready)"
            )
        finally:
            gate.touch()  # else a failure here waits for the held load to give up
        loading.result(timeout=60)
    assert stub.ModelReady(pb.ModelReadyRequest(name="gated"), timeout=PROBE_DEADLINE).ready
    assert servers.rest("GET", "/v2/models/gated/ready").status_code == 200
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=PROBE_DEADLINE).ready
