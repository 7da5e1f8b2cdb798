"""What REST refuses, gRPC refuses too: a nameless input, values in two contents fields, a
``binary_data_output`` or ``binary_data`` that is not a boolean."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.server.grpc.codec import decode_request
from modelpilot.server.grpc.generated import inference_pb2 as pb
from modelpilot.server.grpc.generated import inference_pb2_grpc as pbg
from tests.server.grpc.conftest import infer_request


def test_an_input_without_a_name_is_refused() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
    with pytest.raises(BadRequest, match="input 0 has no name; every input needs a name"):
        decode_request(request)


def test_values_in_a_second_contents_field_are_refused_not_dropped() -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP64", shape=[2])
    tensor.contents.fp64_contents.extend([1.0, 2.0])
    tensor.contents.int64_contents.extend([3, 4])
    with pytest.raises(InvalidInput) as refused:
        decode_request(request)
    assert str(refused.value) == (
        "input 'x' of datatype FP64 has values in int64_contents; send them in fp64_contents alone"
    )


@pytest.mark.parametrize("kind", ["int64_param", "string_param", "double_param"])
def test_binary_data_flags_must_be_booleans(kind: str) -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
    param = request.parameters["binary_data_output"]
    setattr(param, kind, {"int64_param": 5, "string_param": "no", "double_param": 1.0}[kind])
    with pytest.raises(BadRequest, match='"binary_data_output" of the request must be a bool'):
        decode_request(request)
    del request.parameters["binary_data_output"]
    request.outputs.add(name="y").parameters["binary_data"].int64_param = 1
    with pytest.raises(BadRequest, match="\"binary_data\" of output 'y' must be a bool_param"):
        decode_request(request)


def test_booleans_stay_taken() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
    request.parameters["binary_data_output"].bool_param = True
    request.outputs.add(name="y").parameters["binary_data"].bool_param = False
    decoded = decode_request(request)
    assert decoded.parameters == {"binary_data_output": True}
    assert decoded.outputs[0].parameters == {"binary_data": False}


def test_a_grpc_client_hears_invalid_argument(port: int) -> None:
    """The tester's three requests, over the wire, to a server that answered them all OK."""
    rows = np.array([[5.1, 3.5, 1.4, 0.2]])
    nameless = infer_request(rows)
    nameless.inputs[0].name = ""
    two_fields = pb.ModelInferRequest(model_name="iris")
    tensor = two_fields.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend([5.1, 3.5, 1.4, 0.2])
    tensor.contents.int64_contents.extend([1, 2, 3, 4])
    flag = infer_request(rows)
    flag.parameters["binary_data_output"].int64_param = 5
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        for request, message in (
            (nameless, "has no name"),
            (two_fields, "has values in int64_contents"),
            (flag, '"binary_data_output" of the request must be a bool_param'),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in refused.value.details()
