"""BOOL tensors in raw_input_contents: a byte other than 0 or 1 is INVALID_ARGUMENT, named."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc
from tests.server.grpc.conftest import GrpcServer


@pytest.fixture(params=["native", "grpcio"])
def stub(
    grpc_server: GrpcServer, request: pytest.FixtureRequest
) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_server(grpc_server=request.param)}")
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def _request(raw: bytes) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="flags", datatype="BOOL", shape=[1, 4])
    request.raw_input_contents.append(raw)
    return request


def test_raw_bool_bytes(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    assert stub.ModelInfer(_request(b"\x01\x00\x00\x01")).model_name == "iris"
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(_request(b"\x01\x00\x00\x80"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'flags': BOOL data must be bytes 0 (false) or 1 (true)" in info.value.details()
