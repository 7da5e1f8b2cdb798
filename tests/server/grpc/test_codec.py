"""gRPC tensor conversion: typed contents for every datatype, raw contents, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.protocol.datatypes import numpy_dtype
from modelpilot.protocol.types import InferenceResponse, Tensor
from modelpilot.server.grpc.codec import _CONTENTS, decode_request, encode_response
from modelpilot.server.grpc.generated import inference_pb2 as pb


@pytest.mark.parametrize("datatype", sorted(set(_CONTENTS) - {"BYTES"}))
def test_typed_contents(datatype: str) -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[2, 2])
    getattr(tensor.contents, _CONTENTS[datatype]).extend(
        [True, False, True, True] if datatype == "BOOL" else [1, 2, 3, 4]
    )
    decoded = decode_request(request).inputs[0]
    assert decoded.data.dtype == numpy_dtype(datatype) and decoded.data.shape == (2, 2)


def test_bytes_contents_and_parameters() -> None:
    request = pb.ModelInferRequest(model_name="m", id="r")
    request.parameters["flag"].bool_param = True
    request.parameters["n"].int64_param = 3
    tensor = request.inputs.add(name="s", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.extend([b"a", b"b"])
    request.outputs.add(name="y")
    decoded = decode_request(request)
    assert decoded.id == "r" and decoded.parameters == {"flag": True, "n": 3}
    assert decoded.inputs[0].data.tolist() == [b"a", b"b"]
    assert [o.name for o in decoded.outputs] == ["y"]


def test_counts_that_do_not_fit() -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[3])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    with pytest.raises(InvalidInput, match=r"2 values in fp32_contents but shape \[3\] needs 3"):
        decode_request(request)
    fp16 = pb.ModelInferRequest(model_name="m")
    fp16.inputs.add(name="h", datatype="FP16", shape=[1])
    with pytest.raises(InvalidInput, match="send raw_input_contents"):
        decode_request(fp16)
    odd = pb.ModelInferRequest(model_name="m")
    odd.inputs.add(name="x", datatype="FP99", shape=[1])
    with pytest.raises(InvalidInput, match="unknown datatype"):
        decode_request(odd)
    extra = pb.ModelInferRequest(model_name="m", raw_input_contents=[b"", b""])
    extra.inputs.add(name="x", datatype="FP32", shape=[0])
    with pytest.raises(BadRequest, match="1 inputs but 2 raw_input_contents"):
        decode_request(extra)


def test_responses_are_raw() -> None:
    labels = np.array([b"yes"], dtype=object)
    message = encode_response(
        InferenceResponse(
            "m",
            "1",
            "r",
            [
                Tensor("p", "FP32", (2,), np.array([0.5, 1.5], dtype=np.float32)),
                Tensor("l", "BYTES", (1,), labels),
            ],
        )
    )
    assert [(o.name, o.datatype, list(o.shape)) for o in message.outputs] == [
        ("p", "FP32", [2]),
        ("l", "BYTES", [1]),
    ]
    assert np.frombuffer(message.raw_output_contents[0], "<f4").tolist() == [0.5, 1.5]
    assert message.raw_output_contents[1] == b"\x03\x00\x00\x00yes"


@pytest.mark.parametrize(
    ("datatype", "values", "message"),
    [
        ("INT8", [1, 300], "INT8 holds -128 to 127; the data reach 300"),
        ("INT16", [-40000], "the data reach -40000"),
        ("UINT8", [256], "UINT8 holds 0 to 255"),
        ("UINT16", [70000], "the data reach 70000"),
    ],
)
def test_typed_contents_outside_a_narrow_type_are_refused_not_wrapped(
    datatype: str, values: list[int], message: str
) -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[len(values)])
    getattr(tensor.contents, _CONTENTS[datatype]).extend(values)
    with pytest.raises(InvalidInput, match=message):
        decode_request(request)
    getattr(tensor.contents, _CONTENTS[datatype])[:] = [0] * len(values)
    assert decode_request(request).inputs[0].data.dtype == numpy_dtype(datatype)


def test_raw_and_typed_contents_together_are_refused() -> None:
    """Triton refuses an input sent both ways; which of the two would the model see?"""
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP64", shape=[1])
    tensor.contents.fp64_contents.append(1.0)
    request.raw_input_contents.append(np.array([2.0]).tobytes())
    with pytest.raises(InvalidInput, match="typed contents as well as raw_input_contents"):
        decode_request(request)


@pytest.mark.parametrize("shape", [[1] * 64 + [4], [0, 2**62, 2**62], [2**62, 2**62, 0]])
@pytest.mark.parametrize("raw", [False, True])
def test_shapes_no_array_can_have_are_invalid_input(shape: list[int], raw: bool) -> None:
    """NumPy refused them with a ValueError, which the server answered INTERNAL."""
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP64", shape=shape)
    if raw:
        request.raw_input_contents.append(b"" if 0 in shape else b"\x00" * 32)
    elif 0 not in shape:
        tensor.contents.fp64_contents.extend([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(InvalidInput, match=r"input 'x': .*(dimensions|larger than any)"):
        decode_request(request)


def test_what_the_client_sent_is_quoted_short() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="n" * 100_000, datatype="D" * 100_000, shape=[1])
    with pytest.raises(InvalidInput) as refused:
        decode_request(request)
    assert len(str(refused.value)) < 500 and "(100000 characters)" in str(refused.value)
