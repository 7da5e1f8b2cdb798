"""Conformance over gRPC, judged by tritonclient, plus every error case and its status.

Every test runs against both fronts: ModelPilot's own HTTP/2 server and grpcio's.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from pathlib import Path

import grpc
import joblib
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient
from sklearn.linear_model import LogisticRegression
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from modelpilot.registry.store import Registry
from modelpilot.runtimes.convert import ATOL, RTOL
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc
from modelpilot.serving.registration import register_model
from tests.conftest import shop_frame
from tests.server.grpc.conftest import GrpcServer

SERVERS = ["native", "grpcio"]


@pytest.fixture(params=SERVERS)
def port(grpc_server: GrpcServer, request: pytest.FixtureRequest) -> int:
    return grpc_server(grpc_server=request.param)


@pytest.fixture
def triton(port: int) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    yield client
    client.close()


@pytest.fixture
def stub(port: int) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def rows_input(rows: np.ndarray, datatype: str = "FP64") -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    return tensor


def test_health_and_metadata(triton: grpcclient.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("iris")
    assert triton.is_model_ready("iris", "1")
    assert not triton.is_model_ready("nope")
    assert triton.get_server_metadata().name == "modelpilot"
    meta = triton.get_model_metadata("iris")
    assert meta.platform == "sklearn" and list(meta.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("input-0", "FP64", [-1, 4])
    ]
    index = triton.get_model_repository_index()
    assert {(m.name, m.state) for m in index.models} == {("iris", "READY"), ("forest", "READY")}


def test_infer_matches_the_model_in_process(
    triton: grpcclient.InferenceServerClient,
    iris_model: LogisticRegression,
    iris_frame: pd.DataFrame,
) -> None:
    rows = iris_frame.to_numpy()[::7]
    result = triton.infer("iris", [rows_input(rows)], request_id="g-1")
    assert result.get_response().id == "g-1"
    np.testing.assert_array_equal(
        result.as_numpy("predict"), iris_model.predict(iris_frame.iloc[::7])
    )
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), iris_model.predict_proba(iris_frame.iloc[::7])
    )
    only = triton.infer(
        "iris",
        [rows_input(rows)],
        model_version="1",
        outputs=[grpcclient.InferRequestedOutput("predict")],
    )
    assert [o.name for o in only.get_response().outputs] == ["predict"]


def test_typed_contents_instead_of_raw(
    stub: pb_grpc.GRPCInferenceServiceStub, iris_model: LogisticRegression, iris_frame: pd.DataFrame
) -> None:
    request = pb.ModelInferRequest(model_name="iris", id="typed")
    tensor = request.inputs.add(name="input-0", datatype="FP32", shape=[2, 4])
    tensor.contents.fp32_contents.extend(iris_frame.iloc[:2].to_numpy().ravel().tolist())
    response = stub.ModelInfer(request)
    assert response.id == "typed"
    labels = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
    np.testing.assert_array_equal(labels, iris_model.predict(iris_frame.iloc[:2]))


def test_unload_and_load(triton: grpcclient.InferenceServerClient) -> None:
    triton.unload_model("forest")
    assert not triton.is_model_ready("forest")
    with pytest.raises(InferenceServerException) as info:
        triton.infer("forest", [rows_input(np.zeros((1, 10)))])
    assert info.value.status() == "StatusCode.NOT_FOUND"
    triton.load_model("forest")
    assert triton.infer("forest", [rows_input(np.zeros((1, 10)))]).as_numpy("predict").shape == (1,)


CASES = [
    # (model, version, rows, datatype, status, fragment)
    ("iris", "", np.zeros((1, 3)), "FP64", "INVALID_ARGUMENT", "takes 4"),
    ("iris", "", np.zeros((1, 2, 2)), "FP64", "INVALID_ARGUMENT", "takes a 2-D tensor"),
    (
        "iris",
        "",
        np.array([[b"a", b"b", b"c", b"d"]], dtype=object),
        "BYTES",
        "INVALID_ARGUMENT",
        "holds strings but the model takes FP64",
    ),
    ("iris", "", np.zeros((0, 4)), "FP64", "INVALID_ARGUMENT", "no rows"),
    (
        "iris",
        "",
        np.array([[1.0, np.nan, 1.0, 1.0]]),
        "FP64",
        "INVALID_ARGUMENT",
        "NaN or infinite",
    ),
    ("nope", "", np.zeros((1, 4)), "FP64", "NOT_FOUND", "no model named 'nope'"),
    ("iris", "4", np.zeros((1, 4)), "FP64", "NOT_FOUND", "has no version 4"),
]


@pytest.mark.parametrize(("model", "version", "rows", "datatype", "status", "message"), CASES)
def test_errors_get_the_matching_status(
    triton: grpcclient.InferenceServerClient,
    model: str,
    version: str,
    rows: np.ndarray,
    datatype: str,
    status: str,
    message: str,
) -> None:
    with pytest.raises(InferenceServerException) as info:
        triton.infer(model, [rows_input(rows, datatype)], model_version=version)
    assert info.value.status() == f"StatusCode.{status}"
    assert message in info.value.message()
    # The next good request is unaffected.
    assert triton.infer("iris", [rows_input(np.ones((1, 4)))]).as_numpy("predict").shape == (1,)


def test_a_stream_is_refused_at_once_while_the_client_keeps_it_open(
    triton: grpcclient.InferenceServerClient,
) -> None:
    """Streaming is not served. ModelPilot's own front answered a call only once its request
    had ended: tritonclient's stream, which stays open, waited forever for its answer; then
    it heard "no method ..." (grpcio: "Method not found!"), which said nothing of what to use
    instead."""
    answers: queue.Queue[object] = queue.Queue()
    triton.start_stream(callback=lambda result, error: answers.put(error))
    try:
        # The refusal may come as soon as the stream opens, before this request is sent: the
        # client then refuses to send it, and says the error went to the callback.
        with contextlib.suppress(InferenceServerException):
            triton.async_stream_infer("iris", [rows_input(np.ones((1, 4)))])
        error = answers.get(timeout=5)
        assert isinstance(error, InferenceServerException)
        assert error.status() == "StatusCode.UNIMPLEMENTED"
        assert "ModelStreamInfer" in str(error.message())
        assert "unary ModelInfer call" in str(error.message())
    finally:
        triton.stop_stream()
    # The connection serves on.
    assert triton.infer("iris", [rows_input(np.ones((1, 4)))]).as_numpy("predict").shape == (1,)


def test_an_overlong_request_id_is_refused(triton: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        triton.infer("iris", [rows_input(np.ones((1, 4)))], request_id="x" * 200)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "the request id has 200 characters" in info.value.message()
    answered = triton.infer("iris", [rows_input(np.ones((1, 4)))], request_id="y" * 128)
    assert answered.get_response().id == "y" * 128


def test_raw_contents_that_do_not_fit(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
    request.raw_input_contents.append(b"\x00" * 24)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "24 bytes of raw data, but shape [1, 4] of FP64 needs 32" in info.value.details()
    request.raw_input_contents.append(b"\x00" * 32)
    with pytest.raises(grpc.RpcError) as extra:
        stub.ModelInfer(request)
    assert "1 inputs but 2 raw_input_contents" in extra.value.details()


def test_a_long_model_name_is_quoted_short(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    """Quoted whole, a 100,000-character name made a grpc-message that clients refuse to read
    (they saw INTERNAL, or a broken connection, not NOT_FOUND)."""
    request = pb.ModelInferRequest(model_name="a" * 100_000, model_version="abc")
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
    request.raw_input_contents.append(b"\x00" * 32)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    details = info.value.details()
    assert len(details) < 500 and "'aaaa" in details and "(100000 characters)" in details


@pytest.mark.parametrize("shape", [[1] * 64 + [4], [0, 2**62, 2**62], [2**62, 2**62, 0]])
def test_shapes_no_array_can_have_are_invalid_arguments(
    stub: pb_grpc.GRPCInferenceServiceStub, shape: list[int]
) -> None:
    """NumPy refused them with a ValueError: INTERNAL, and a traceback in the log."""
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input-0", datatype="FP64", shape=shape)
    request.raw_input_contents.append(b"" if 0 in shape else b"\x00" * 32)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'input-0'" in info.value.details()


@pytest.mark.parametrize("kind", SERVERS)
def test_messages_over_the_limit_are_refused(grpc_server: GrpcServer, kind: str) -> None:
    port = grpc_server(grpc_max_message_bytes=4096, grpc_server=kind)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        with pytest.raises(InferenceServerException) as info:
            client.infer("iris", [rows_input(np.ones((1000, 4)))])
        assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert client.infer("iris", [rows_input(np.ones((2, 4)))]).as_numpy("predict").shape == (2,)
    finally:
        client.close()


def test_a_model_that_takes_text_gets_one_tensor_per_feature(
    triton: grpcclient.InferenceServerClient,
    served_registry: Registry,
    shop_files: tuple[Path, Path],
) -> None:
    model, reference = shop_files
    register_model(served_registry, "shop", model, reference=reference, target="bought")
    triton.load_model("shop")
    meta = triton.get_model_metadata("shop")
    rows = shop_frame(8, seed=4)
    tensors = []
    for spec in meta.inputs:  # what the metadata says to send, as a client reads it
        values = rows[spec.name].to_numpy()
        values = values.astype(object) if spec.datatype == "BYTES" else values.astype(float)
        tensor = grpcclient.InferInput(spec.name, [len(rows)], spec.datatype)
        tensor.set_data_from_numpy(values)
        tensors.append(tensor)
    assert [t.name() for t in tensors] == ["color", "size", "count"]
    result = triton.infer("shop", tensors)
    expected = joblib.load(model).predict_proba(rows)
    served = result.as_numpy("predict_proba")  # by ONNX Runtime, in float32
    np.testing.assert_allclose(served, expected, rtol=RTOL, atol=ATOL)


def test_model_config_says_what_triton_tools_read(
    triton: grpcclient.InferenceServerClient,
) -> None:
    """Read with Triton's own message definitions: the field numbers are Triton's."""
    config = triton.get_model_config("iris").config
    assert config.max_batch_size == 64
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("input-0", mc.TYPE_FP64, [4])
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
        ("predict", mc.TYPE_INT64, [1]),
        ("predict_proba", mc.TYPE_FP64, [3]),
    ]
    assert config.output[0].HasField("reshape") and list(config.output[0].reshape.shape) == []
    assert config.backend == "sklearn"
    with pytest.raises(InferenceServerException, match="no model named 'nope'"):
        triton.get_model_config("nope")
