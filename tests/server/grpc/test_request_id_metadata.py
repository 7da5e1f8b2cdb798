"""The request id over gRPC as over REST: the message's ``id``, else the call's
``x-request-id`` metadata; answered in the response's ``id`` and in ``x-request-id``
metadata; checked by the same rules. Both fronts."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc
from tests.server.grpc.conftest import GrpcServer, infer_request

ROW = np.array([[5.1, 3.5, 1.4, 0.2]])


@pytest.fixture(params=["native", "grpcio"])
def port(grpc_server: GrpcServer, request: pytest.FixtureRequest) -> int:
    return grpc_server(grpc_server=request.param)


@pytest.fixture
def stub(port: int) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def test_the_metadata_id_is_taken_when_the_message_has_none(port: int) -> None:
    """tritonclient sends ``headers`` as call metadata: REST took an x-request-id header's
    id, gRPC made its own, so labels posted under a proxy's id matched nothing."""
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        tensor = grpcclient.InferInput("input-0", [1, 4], "FP64")
        tensor.set_data_from_numpy(ROW)
        result = client.infer("iris", [tensor], headers={"x-request-id": "hdr-id-1"})
        assert result.get_response().id == "hdr-id-1"
        # The message's id comes first, as the body's does over REST.
        result = client.infer(
            "iris", [tensor], request_id="msg-id", headers={"x-request-id": "hdr-id-2"}
        )
        assert result.get_response().id == "msg-id"
    finally:
        client.close()


def test_the_answer_carries_the_id_in_its_metadata(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    response, call = stub.ModelInfer.with_call(
        infer_request(ROW), metadata=(("x-request-id", "hdr-id-3"),)
    )
    assert response.id == "hdr-id-3"
    assert ("x-request-id", "hdr-id-3") in call.initial_metadata()
    # A server-made id too: the client reads it where it reads its own.
    response, call = stub.ModelInfer.with_call(infer_request(ROW))
    assert response.id and ("x-request-id", response.id) in call.initial_metadata()
    # An id beyond ASCII, which metadata cannot carry, is in the message alone.
    response, call = stub.ModelInfer.with_call(infer_request(ROW, request_id="идент"))
    assert response.id == "идент"
    assert "x-request-id" not in dict(call.initial_metadata())


def test_a_failed_call_echoes_the_clients_id(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(infer_request(ROW, model="nope"), metadata=(("x-request-id", "hdr-id-4"),))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert ("x-request-id", "hdr-id-4") in info.value.trailing_metadata()  # type: ignore[attr-defined]


def test_ids_are_checked_as_rest_checks_them(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    """An id with a space around it was refused over REST (its x-request-id header could not
    carry it) but taken over gRPC, whose answer now carries it in metadata too."""
    for spaced in (" lead", "trail "):
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(infer_request(ROW, request_id=spaced))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "begins or ends with a space" in str(info.value.details())
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(infer_request(ROW), metadata=(("x-request-id", "x" * 129),))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 128" in str(info.value.details())
    # A refused id is not echoed back.
    assert "x-request-id" not in dict(info.value.trailing_metadata())  # type: ignore[attr-defined]


def test_other_methods_ignore_the_id(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    response, call = stub.ServerReady.with_call(
        pb.ServerReadyRequest(), metadata=(("x-request-id", "hdr-id-5"),)
    )
    assert response.ready
    assert "x-request-id" not in dict(call.initial_metadata())
