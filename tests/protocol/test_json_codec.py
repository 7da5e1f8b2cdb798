"""The v2 JSON body and the binary extension, decoded and encoded without a server."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.protocol.json_codec import decode_request, encode_response, nested_json
from modelpilot.protocol.types import (
    MAX_REQUEST_ID,
    InferenceResponse,
    RequestedOutput,
    Tensor,
)


def test_nested_and_flat_data_give_the_same_tensor() -> None:
    nested = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], [3, 4]]}]
    }
    flat = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]}]}
    a = decode_request(orjson.dumps(nested)).inputs[0]
    b = decode_request(orjson.dumps(flat)).inputs[0]
    assert a.data.dtype == np.int32 and a.data.shape == (2, 2)
    np.testing.assert_array_equal(a.data, b.data)


def test_id_parameters_and_outputs() -> None:
    body = {
        "id": "r1",
        "parameters": {"binary_data_output": True},
        "inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}],
        "outputs": [{"name": "y", "parameters": {"binary_data": False}}],
    }
    request = decode_request(orjson.dumps(body))
    assert request.id == "r1" and request.parameters == {"binary_data_output": True}
    assert request.inputs[0].data.tolist() == [b"a", b"b"]
    assert request.outputs == [RequestedOutput("y", {"binary_data": False})]


def test_binary_inputs_mixed_with_json() -> None:
    raw = np.array([1.5, 2.5], dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "shape": [2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                },
                {"name": "b", "shape": [1], "datatype": "INT64", "data": [7]},
            ]
        }
    )
    request = decode_request(header + raw, len(header))
    assert request.inputs[0].data.tolist() == [1.5, 2.5]
    assert request.inputs[1].data.tolist() == [7]


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"{", BadRequest, "not valid JSON: unexpected end of data at line 1, column 2"),
        # orjson said "invalid literal, expected 'null'" of a bare word
        (b"not json", BadRequest, "not valid JSON: unexpected text at line 1, column 1"),
        (b"", BadRequest, "the body is empty; send JSON"),
        (b'"text"', BadRequest, "must be a JSON object"),
        (b'{"inputs": {}}', InvalidInput, "non-empty list"),
        (b'{"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}', BadRequest, '"name"'),
        (
            b'{"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}]}',
            InvalidInput,
            "non-negative",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}',
            InvalidInput,
            'has no "data"',
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": [1]}]}',
            InvalidInput,
            "must be strings",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32",'
            b' "parameters": {"binary_data_size": 4}}]}',
            BadRequest,
            "no Inference-Header",
        ),
    ],
)
def test_malformed_requests(body: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decode_request(body)


def response() -> InferenceResponse:
    labels = np.array([b"cat", b"dog"], dtype=object)
    scores = np.array([[0.25, 0.75], [0.5, 0.5]])
    return InferenceResponse(
        "m",
        "2",
        "r1",
        [Tensor("label", "BYTES", (2,), labels), Tensor("score", "FP64", (2, 2), scores)],
    )


def test_json_response() -> None:
    request = decode_request(
        b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}'
    )
    body, length = encode_response(response(), request)
    assert length is None
    decoded = orjson.loads(body)
    assert decoded["outputs"][0] == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["cat", "dog"],
    }
    assert decoded["outputs"][1]["data"] == [0.25, 0.75, 0.5, 0.5]


def test_binary_response_for_the_outputs_asked() -> None:
    request = decode_request(
        orjson.dumps(
            {
                "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
                "outputs": [
                    {"name": "score", "parameters": {"binary_data": True}},
                    {"name": "label"},
                ],
            }
        )
    )
    body, length = encode_response(response(), request)
    assert length is not None
    header = orjson.loads(body[:length])
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 32}
    assert "data" in header["outputs"][0]
    np.testing.assert_array_equal(np.frombuffer(body[length:], dtype="<f8"), [0.25, 0.75, 0.5, 0.5])


def test_nested_values_keep_their_shape_and_their_precision() -> None:
    def dumped(data: np.ndarray, datatype: str) -> bytes:
        value = nested_json(Tensor("t", datatype, data.shape, data))
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)

    probabilities = np.array([[1.0000001, 0.1], [0.25, 0.75]], dtype=np.float32)
    # As float32 writes them: tolist() made 1.0000001192092896 and 0.10000000149011612.
    assert dumped(probabilities, "FP32") == b"[[1.0000001,0.1],[0.25,0.75]]"
    labels = np.array([[b"setosa"], [b"virginica"]], dtype=object)
    assert dumped(labels, "BYTES") == b'[["setosa"],["virginica"]]'
    swapped = np.array([1.5, 2.5], dtype=">f8")  # not native: orjson takes no such array
    assert dumped(swapped, "FP64") == b"[1.5,2.5]"
    assert dumped(np.array([True, False]), "BOOL") == b"[true,false]"


def _with_id(request_id: object) -> bytes:
    tensor = {"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}
    return orjson.dumps({"id": request_id, "inputs": [tensor]})


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("r-1", "r-1"),
        (17, "17"),
        ("", None),
        (None, None),
        ("é" * 128, "é" * 128),
        ("a\u2028\ue000b", "a\u2028\ue000b"),  # not printable, but no control characters
    ],
)
def test_a_request_id_is_kept_as_text(given: object, kept: str | None) -> None:
    assert decode_request(_with_id(given)).id == kept


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("x" * (MAX_REQUEST_ID + 1), "the request id has 129 characters; at most 128"),
        ("a\x00b", "holds control characters"),
        ("line\nbreak", "holds control characters"),
        ("c1\x85", "holds control characters"),
        ({"a": 1}, "must be a string, not dict"),
        (True, "must be a string, not bool"),
    ],
)
def test_a_request_id_that_no_store_could_keep_is_refused(given: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode_request(_with_id(given))


_GOOD = {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}
_ODD: list[object] = [None, 1, 1.5, True, "s", [], [1], [True], [-1], [1.0], {}, {"a": 1}, [[1]]]
_ODD += [[1] * 65, [0, 2**63], [0, 2**62, 2**62], [2**62, 2**62, 0]]  # shapes NumPy refuses


def _malformed() -> list[dict[str, object]]:
    bodies: list[dict[str, object]] = [{"inputs": odd} for odd in _ODD]
    for odd in _ODD:
        bodies += [{"inputs": [{**_GOOD, field: odd}]} for field in _GOOD]
        bodies += [{"inputs": [_GOOD], field: odd} for field in ("id", "parameters", "outputs")]
        bodies += [
            {"inputs": [{**_GOOD, "parameters": odd}]},
            {"inputs": [{**_GOOD, "parameters": {"binary_data_size": odd}}]},
            {"inputs": [_GOOD], "outputs": [odd]},
            {"inputs": [_GOOD], "outputs": [{"name": odd}]},
            {"inputs": [_GOOD], "outputs": [{"name": "y", "parameters": odd}]},
        ]
    return bodies


def test_a_body_of_any_shape_is_refused_as_a_bad_request_or_taken() -> None:
    """Never with another error, which the server would answer 500 to."""
    refused = 0
    for body in _malformed():
        try:
            decode_request(orjson.dumps(body))
        except BadRequest:  # InvalidInput too
            refused += 1
    assert refused > 100


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("INT8", [1, 300], "INT8 holds whole numbers from -128 to 127; the data hold 300$"),
        ("INT8", [1, 300.0], "INT8 holds whole numbers from -128 to 127; the data hold 300.0"),
        ("UINT64", [-1], "UINT64 holds whole numbers from 0 to 18446744073709551615; .* -1$"),
        ("INT64", [2**63], f"INT64 holds .* to {2**63 - 1}; the data hold {2**63}$"),
        ("INT32", [1, 2.5], "INT32 data must be whole numbers"),
        ("INT32", [None], "INT32 data must be numbers, not nulls"),
        ("BOOL", ["false", "true"], "BOOL data must be true or false, not strings"),
        ("BOOL", [0, 1], "BOOL data must be true or false, not numbers"),
        ("FP64", [1.0, "3.5"], "FP64 data must be numbers, not strings"),
        ("FP32", [True], "FP32 data must be numbers, not true or false"),
        ("FP16", [1.0, 1e6], "FP16 data cannot hold 1000000.0"),
        ("INT64", ["7"], "INT64 data must be numbers, not strings"),
    ],
)
def test_values_that_a_cast_would_change_are_refused(
    datatype: str, data: list[object], message: str
) -> None:
    body = {"inputs": [{"name": "x", "shape": [len(data)], "datatype": datatype, "data": data}]}
    with pytest.raises(InvalidInput, match=message):
        decode_request(orjson.dumps(body))


def test_whole_floats_and_the_ends_of_a_range_are_integers_as_sent() -> None:
    data = [1.0, -(2**63), 2**63 - 1]
    body = {"inputs": [{"name": "x", "shape": [3], "datatype": "INT64", "data": data}]}
    decoded = decode_request(orjson.dumps(body)).inputs[0].data
    assert decoded.dtype == np.int64 and decoded.tolist() == [1, -(2**63), 2**63 - 1]


def test_binary_flags_are_booleans() -> None:
    """The text "false" is no flag: it used to send the outputs binary."""
    tensor = {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}
    body = {"inputs": [tensor], "parameters": {"binary_data_output": "false"}}
    with pytest.raises(BadRequest, match='"binary_data_output" of the request must be true or'):
        decode_request(orjson.dumps(body))
    body = {"inputs": [tensor], "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]}
    with pytest.raises(BadRequest, match="\"binary_data\" of output 'y' must be true or false"):
        decode_request(orjson.dumps(body))


@pytest.mark.parametrize(
    "shape", [[1] * 64 + [4], [0, 2**63], [0, 2**62, 2**62], [2**62, 2**62, 0]]
)
@pytest.mark.parametrize("binary", [False, True])
def test_shapes_no_array_can_have_are_invalid_input(shape: list[int], binary: bool) -> None:
    """NumPy refused them with a ValueError, which the server answered 500."""
    tensor: dict[str, object] = {"name": "x", "shape": shape, "datatype": "FP64"}
    if binary:
        header = orjson.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": 0}}]})
        with pytest.raises(InvalidInput, match=r"input 'x': .*(dimensions|larger than any)"):
            decode_request(header, len(header))
    else:
        body = orjson.dumps({"inputs": [{**tensor, "data": []}]})
        with pytest.raises(InvalidInput, match=r"input 'x': .*(dimensions|larger than any)"):
            decode_request(body)


def test_what_the_client_sent_is_quoted_short() -> None:
    """A 100,000-character input name or datatype came back whole in the error."""
    name, odd = "n" * 100_000, "D" * 100_000
    body = {"inputs": [{"name": name, "shape": [1], "datatype": odd, "data": [1]}]}
    with pytest.raises(InvalidInput) as refused:
        decode_request(orjson.dumps(body))
    assert len(str(refused.value)) < 500
    assert "nnnn'... (100000 characters): unknown datatype 'DDDD" in str(refused.value)
    with pytest.raises(BadRequest, match=r"is \d{100}\.\.\. \(4000 characters\) but the body"):
        decode_request(b"{}", 10**3999)
