"""Raw tensor bytes: every datatype round-trips; sizes that do not fit are refused."""

from __future__ import annotations

import numpy as np
import pytest

from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.protocol.datatypes import DATATYPES, numpy_dtype
from modelpilot.protocol.raw import decode_raw, element_count, encode_raw


@pytest.mark.parametrize("datatype", sorted(DATATYPES - {"BYTES"}))
def test_fixed_size_types_round_trip(datatype: str) -> None:
    array = np.arange(6).reshape(2, 3).astype(numpy_dtype(datatype))
    raw = encode_raw(datatype, array)
    assert len(raw) == 6 * array.itemsize
    back = decode_raw("x", datatype, [2, 3], raw)
    np.testing.assert_array_equal(back, array)


def test_bytes_are_length_prefixed() -> None:
    array = np.array([b"a", b"", "héllo"], dtype=object)
    raw = encode_raw("BYTES", array)
    assert raw[:5] == b"\x01\x00\x00\x00a"
    assert decode_raw("x", "BYTES", [3], raw).tolist() == [b"a", b"", "héllo".encode()]


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "message"),
    [
        ("FP32", [2], b"\x00" * 4, "4 bytes of raw data, but shape [2] of FP32 needs 8"),
        ("BYTES", [1], b"\x05\x00\x00\x00ab", "claims 5 bytes but only 2 remain"),
        ("BYTES", [1], b"\x01\x00", "ends inside a length prefix"),
        ("BYTES", [2], b"\x01\x00\x00\x00a", "1 BYTES elements, but shape [2] needs 2"),
        ("FP32", [-1], b"", "negative dimension"),
    ],
)
def test_sizes_that_do_not_fit(datatype: str, shape: list[int], raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_raw("x", datatype, shape, raw)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ([1] * 64 + [4], "its shape has 65 dimensions; a tensor has at most 32"),
        ([1] * 33, "its shape has 33 dimensions"),
        ([0, 2**63], "larger than any tensor can be"),
        ([0, 2**62, 2**62], "larger than any tensor can be"),  # empty, but NumPy refuses it
        ([2**62, 2**62, 0], "larger than any tensor can be"),
        ([2**31, 2**31], "larger than any tensor can be"),
    ],
)
def test_shapes_no_array_can_have_are_invalid_input(shape: list[int], message: str) -> None:
    """NumPy's own ValueError (more than 64 dimensions, "array is too big") was a 500."""
    with pytest.raises(InvalidInput, match=message):
        element_count("x", shape)
    with pytest.raises(InvalidInput, match=message):
        decode_raw("x", "FP64", shape, b"")


@pytest.mark.parametrize("datatype", ["FP64", "BYTES"])
def test_an_empty_tensor_may_have_large_dimensions_beside_its_zero(datatype: str) -> None:
    shape = [1] * 29 + [2**30, 2**29 + 3, 0]  # 32 dimensions, the others' product under 2**60
    assert element_count("x", shape) == 0
    assert decode_raw("x", datatype, shape, b"").shape == tuple(shape)
