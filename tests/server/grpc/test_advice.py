"""What an error advises a gRPC client to do names gRPC calls, not REST paths."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pb_grpc
from tests.server.grpc.conftest import GrpcServer, infer_request

ROW = np.array([[5.1, 3.5, 1.4, 0.2]])


@pytest.fixture(params=["native", "grpcio"])
def stub(
    grpc_server: GrpcServer, request: pytest.FixtureRequest
) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_server(grpc_server=request.param)}")
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def test_an_unloaded_model_is_loaded_with_repository_model_load(
    stub: pb_grpc.GRPCInferenceServiceStub,
) -> None:
    """Every call for it answered "load it with POST /v2/repository/models/iris/load"."""
    stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="iris"))
    calls = [
        lambda: stub.ModelInfer(infer_request(ROW)),
        lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="iris")),
        lambda: stub.ModelConfig(pb.ModelConfigRequest(name="iris")),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert info.value.details() == (
            "model 'iris' was unloaded; load it through the repository API "
            "(gRPC RepositoryModelLoad, model_name 'iris')"
        )
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris"))
    assert stub.ModelInfer(infer_request(ROW)).model_name == "iris"


def test_the_classification_refusal_points_at_server_metadata(
    stub: pb_grpc.GRPCInferenceServiceStub,
) -> None:
    request = infer_request(ROW)
    output = request.outputs.add(name="predict_proba")
    output.parameters["classification"].int64_param = 2
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = str(info.value.details())
    assert details.endswith("lists the extensions it offers (gRPC ServerMetadata)")
    assert "/v2" not in details
