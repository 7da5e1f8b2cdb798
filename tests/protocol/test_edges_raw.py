"""BOOL tensors in raw bytes are 0 (false) or 1 (true), one byte each, as Triton has them:
any other byte was taken as a bool that is neither."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from modelpilot.errors import BadRequest
from modelpilot.protocol.json_codec import decode_request
from modelpilot.protocol.raw import decode_raw


@pytest.mark.parametrize(("raw", "at", "byte"), [(b"\x00\x02", 1, 2), (b"\xff\x01", 0, 255)])
def test_bool_bytes_other_than_0_and_1_are_refused(raw: bytes, at: int, byte: int) -> None:
    with pytest.raises(BadRequest, match=f"input 'flags': BOOL .* byte {at} .* is {byte}$"):
        decode_raw("flags", "BOOL", [2], raw)


def test_bool_bytes_0_and_1_are_read() -> None:
    array = decode_raw("flags", "BOOL", [2, 2], b"\x01\x00\x00\x01")
    np.testing.assert_array_equal(array, [[True, False], [False, True]])
    assert decode_raw("flags", "BOOL", [0], b"").shape == (0,)


def test_binary_bool_data_of_a_request_is_checked() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "flags",
                    "shape": [3],
                    "datatype": "BOOL",
                    "parameters": {"binary_data_size": 3},
                }
            ]
        }
    )
    assert decode_request(header + b"\x00\x01\x01", len(header)).inputs[0].data.tolist() == [
        False,
        True,
        True,
    ]
    with pytest.raises(BadRequest, match="input 'flags': BOOL data must be bytes 0"):
        decode_request(header + b"\x00\x01\x07", len(header))
