"""What the JSON codec tells a client whose data it cannot take: integers out of range, ragged
or deeply nested lists, and a ``binary_data_size`` that is no number of bytes. NumPy's own
words came through ("Python integer 200 out of bounds for int8"), with the hint to send
numbers, which the client had."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.protocol.json_codec import decode_request


def decode(datatype: str, shape: list[int], data: Any) -> np.ndarray:
    # json, not orjson: it writes integers past 64 bits.
    body = {"inputs": [{"name": "x", "datatype": datatype, "shape": shape, "data": data}]}
    return decode_request(json.dumps(body).encode()).inputs[0].data


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("INT8", [200], "INT8 holds whole numbers from -128 to 127; the data hold 200$"),
        ("INT8", [1, -129], "INT8 holds whole numbers from -128 to 127; the data hold -129$"),
        ("UINT8", [3.0, 256.0], "UINT8 holds whole numbers from 0 to 255; the data hold 256.0$"),
        ("UINT64", [-1], "UINT64 holds whole numbers from 0 to 18446744073709551615; .* -1$"),
        ("UINT64", [2**64], "UINT64 holds whole numbers from 0 to 18446744073709551615"),
        ("INT32", [[1], [2**40]], f"INT32 holds .* to 2147483647; the data hold {2**40}$"),
        ("INT64", [1.0, 2**63], f"INT64 holds .* to {2**63 - 1}; the data hold {2**63}$"),
        # Past 64 bits JSON integers are read as floats: -2**63 - 1 was taken as -2**63.
        ("INT64", [-(2**63) - 1], f"the data hold a number below {-(2**63)} \\(read as -9.2"),
        ("INT64", [1, -(2**63) - 1000], f"the data hold a number below {-(2**63)}"),
        ("UINT64", [2**64 + 1], f"the data hold a number above {2**64 - 1} \\(read as 1.8"),
        ("UINT32", [1.0, 2.0**32], f"UINT32 holds .* to {2**32 - 1}; the data hold {2.0**32}$"),
    ],
)
def test_integers_out_of_range_are_told_the_range(
    datatype: str, data: list[Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        decode(datatype, [len(data)] if not isinstance(data[0], list) else [2, 1], data)
    assert "out of bounds" not in str(caught.value) and "send numbers" not in str(caught.value)


def test_the_ends_of_a_range_are_taken() -> None:
    assert decode("INT8", [2], [-128, 127.0]).tolist() == [-128, 127]
    assert decode("UINT64", [2], [0, 2**64 - 1]).tolist() == [0, 2**64 - 1]
    # Beside a float, NumPy would read them as float64s, which round both up.
    assert decode("INT64", [3], [1.0, 2**63 - 1, -(2**63)]).tolist() == [1, 2**63 - 1, -(2**63)]


@pytest.mark.parametrize("datatype", ["FP64", "INT8", "BOOL", "BYTES"])
@pytest.mark.parametrize("data", [[[1, 2], [3]], [[1, 2], 3]])
def test_ragged_data_is_told_so(datatype: str, data: list[Any]) -> None:
    if datatype == "BYTES":
        data = [[str(v) for v in row] if isinstance(row, list) else str(row) for row in data]
    elif datatype == "BOOL":
        data = [[True for _ in row] if isinstance(row, list) else True for row in data]
    with pytest.raises(InvalidInput) as caught:
        decode(datatype, [2, 2], data)
    message = str(caught.value)
    assert "data cannot be a tensor of shape [2, 2]; it is ragged" in message
    assert "send numbers" not in message and "inhomogeneous" not in message


@pytest.mark.parametrize("datatype", ["FP64", "BYTES"])
def test_data_nested_too_deep_is_told_so(datatype: str) -> None:
    data: list[Any] = ["a" if datatype == "BYTES" else 1.0]
    for _ in range(99):
        data = [data]
    with pytest.raises(InvalidInput, match="its lists are nested 100 deep") as caught:
        decode(datatype, [1], data)
    assert "send numbers" not in str(caught.value)


def test_data_nested_as_deep_as_numpy_takes_is_taken() -> None:
    data: list[Any] = [2.5]
    for _ in range(30):
        data = [data]
    assert decode("FP64", [1], data).tolist() == [2.5]


@pytest.mark.parametrize(
    ("size", "shown"),
    [("1", "the text '1'"), (1.0, "1.0"), (True, "true"), (False, "false"), (-1, "-1")],
)
def test_a_binary_data_size_that_is_no_number_of_bytes_is_refused_by_name(
    size: Any, shown: str
) -> None:
    """ "32" and 32.0 were said to run past the end of the binary section, and true was
    taken as 1."""
    tensor = {"name": "x", "datatype": "INT8", "shape": [1]}
    header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": size}}]})
    with pytest.raises(BadRequest) as caught:
        decode_request(header.encode() + b"\x01", len(header))
    assert str(caught.value) == (
        f"input 'x': \"binary_data_size\" must be a whole number of bytes, 0 or more, not {shown}"
    )


def test_a_binary_data_size_past_the_end_is_still_told_so() -> None:
    tensor = {"name": "x", "datatype": "INT8", "shape": [1], "parameters": {"binary_data_size": 2}}
    header = json.dumps({"inputs": [tensor]})
    with pytest.raises(BadRequest, match="runs past the end of the binary section"):
        decode_request(header.encode() + b"\x01", len(header))
