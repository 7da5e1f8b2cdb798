"""Fitting request tensors to signatures: the checks every transport relies on."""

from __future__ import annotations

import numpy as np
import pytest

from modelpilot.errors import InvalidInput
from modelpilot.protocol.types import RequestedOutput, Tensor
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.serving.inputs import assemble_batch, requested_outputs, to_tensors

TABULAR = Signature(
    inputs=(TensorSpec("input-0", "FP64", (-1, 3)),),
    outputs=(TensorSpec("predict", "INT64", (-1,)), TensorSpec("predict_proba", "FP64", (-1, 2))),
    feature_names=("a", "b", "c"),
)
MULTI = Signature(
    inputs=(TensorSpec("x", "FP32", (-1, 2)), TensorSpec("mask", "BOOL", (-1,))),
    outputs=(TensorSpec("y", "FP32", (-1,)),),
)


def tensor(name: str, data: object, dtype: object = None) -> Tensor:
    array = np.asarray(data, dtype=dtype)
    return Tensor(name, "FP64", array.shape, array)


def test_single_row_is_reshaped_to_one_row() -> None:
    batch = assemble_batch(TABULAR, [tensor("input-0", [1, 2, 3])])
    assert batch["input-0"].shape == (1, 3)
    assert batch["input-0"].dtype == np.float64


def test_rows_under_any_name_are_accepted() -> None:
    batch = assemble_batch(TABULAR, [tensor("INPUT0", [[1, 2, 3], [4, 5, 6]])])
    np.testing.assert_array_equal(batch["input-0"], [[1, 2, 3], [4, 5, 6]])


def test_integers_are_cast_to_the_model_dtype() -> None:
    batch = assemble_batch(TABULAR, [tensor("input-0", [[1, 2, 3]], np.int32)])
    assert batch["input-0"].dtype == np.float64


def test_columns_by_feature_name_are_stacked_in_model_order() -> None:
    inputs = [tensor("c", [3.0, 6.0]), tensor("a", [1.0, 4.0]), tensor("b", [2.0, 5.0])]
    batch = assemble_batch(TABULAR, inputs)
    np.testing.assert_array_equal(batch["input-0"], [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "no inputs"),
        ([tensor("input-0", [[1, 2]])], "has 2 features per row; the model takes 3 (a, b, c)"),
        ([tensor("input-0", [[[1, 2, 3]]])], "takes a 2-D tensor"),
        ([tensor("input-0", np.empty((0, 3)))], "no rows"),
        (
            [tensor("input-0", [[1, np.nan, 3]])],
            "NaN or infinite value(s) (first at row 0, feature 'b')",
        ),
        ([tensor("a", [1.0]), tensor("b", [2.0])], "missing features ['c']"),
        (
            [tensor("a", [1.0]), tensor("b", [2.0]), tensor("c", [3.0]), tensor("d", [4.0])],
            "unknown features ['d']",
        ),
        (
            [tensor("a", [1.0]), tensor("b", [2.0]), tensor("c", [3.0, 4.0])],
            "has 2 rows but others have 1",
        ),
    ],
)
def test_tabular_errors_say_what_to_send(inputs: list[Tensor], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        assemble_batch(TABULAR, inputs)
    assert message in str(info.value)


def test_strings_for_a_numeric_model_are_refused() -> None:
    data = np.array([[b"x", b"y", b"z"]], dtype=object)
    with pytest.raises(InvalidInput, match="holds strings but the model takes FP64"):
        assemble_batch(TABULAR, [Tensor("input-0", "BYTES", data.shape, data)])


def test_fractions_for_an_integer_model_are_refused() -> None:
    signature = Signature(inputs=(TensorSpec("input-0", "INT64", (-1, 2)),), outputs=())
    with pytest.raises(InvalidInput, match="fractional"):
        assemble_batch(signature, [tensor("input-0", [[1.5, 2.0]])])
    batch = assemble_batch(signature, [tensor("input-0", [[1.0, 2.0]])])
    assert batch["input-0"].dtype == np.int64


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("INT8", np.array([[1, 300]]), "holds 300, which INT8 cannot hold"),
        ("INT8", np.array([[1.0, -129.0]]), "holds -129.0, which INT8 cannot hold"),
        ("UINT64", np.array([[-1, 5]]), "holds -1, which UINT64 cannot hold"),
        ("INT64", np.array([[2**64 - 1]], dtype=np.uint64), "holds 18446744073709551615"),
        ("BOOL", np.array([[0.5, 1.0]]), "holds 0.5, which BOOL cannot hold"),
        ("BOOL", np.array([[2, 0]]), r"holds 2, which BOOL cannot hold \(the model takes BOOL: 0"),
        ("FP16", np.array([[1.0, 1e6]]), "holds 1000000.0, which FP16 cannot hold"),
    ],
)
def test_values_a_cast_would_change_are_refused_not_wrapped(
    datatype: str, data: np.ndarray, message: str
) -> None:
    """NumPy's casts wrap integers around (300 becomes the INT8 44) and overflow floats to
    infinity, silently; the model would have answered for another input than the one sent."""
    signature = Signature(inputs=(TensorSpec("x", datatype, (-1, data.shape[1])),), outputs=())
    sent = Tensor("x", "FP64", data.shape, data)
    with pytest.raises(InvalidInput, match=message):
        assemble_batch(signature, [sent])


def test_values_a_cast_keeps_are_taken() -> None:
    for datatype, data in (
        ("INT8", [[-128, 127]]),
        ("UINT64", [[0, 2**63]]),
        ("BOOL", [[0, 1]]),
        ("FP16", [[-65504.0, np.inf]]),
        ("FP32", [[1e30, np.nan]]),
    ):
        array = np.array(data)
        spec = TensorSpec("x", datatype, (-1, 2))
        signature = Signature(inputs=(spec,), outputs=(), allow_nan=True)
        batch = assemble_batch(signature, [Tensor("x", "FP64", array.shape, array)])
        np.testing.assert_allclose(batch["x"].astype(array.dtype), array, rtol=1e-6)


def test_nan_passes_when_the_model_allows_it() -> None:
    signature = Signature(TABULAR.inputs, TABULAR.outputs, TABULAR.feature_names, allow_nan=True)
    batch = assemble_batch(signature, [tensor("input-0", [[1, np.nan, 3]])])
    assert np.isnan(batch["input-0"][0, 1])


def test_named_inputs_are_matched_and_shape_checked() -> None:
    x = tensor("x", [[1, 2], [3, 4]])
    mask = Tensor("mask", "BOOL", (2,), np.array([True, False]))
    batch = assemble_batch(MULTI, [mask, x])
    assert batch["x"].dtype == np.float32
    with pytest.raises(InvalidInput, match=r"missing \['mask'\]"):
        assemble_batch(MULTI, [x])
    with pytest.raises(InvalidInput, match=r"has shape \[2, 3\]; the model takes \[-1, 2\]"):
        assemble_batch(MULTI, [tensor("x", [[1, 2, 3], [4, 5, 6]]), mask])


def test_requested_outputs_default_to_all_and_reject_unknown() -> None:
    assert requested_outputs(TABULAR, []) == ["predict", "predict_proba"]
    assert requested_outputs(TABULAR, [RequestedOutput("predict_proba")]) == ["predict_proba"]
    with pytest.raises(InvalidInput, match="unknown output"):
        requested_outputs(TABULAR, [RequestedOutput("nope")])
    twice = [RequestedOutput("predict"), RequestedOutput("predict")]
    with pytest.raises(InvalidInput, match="output 'predict' is given more than once"):
        requested_outputs(TABULAR, twice)
    # Triton's classification extension is not offered: no silent tensor in its stead.
    classified = [RequestedOutput("predict_proba", {"classification": 2})]
    with pytest.raises(InvalidInput, match=r"\['predict_proba'\] ask for classification"):
        requested_outputs(TABULAR, classified)


@pytest.mark.parametrize("signature", [TABULAR, MULTI])
def test_an_input_given_twice_is_refused_by_its_name(signature: Signature) -> None:
    with pytest.raises(InvalidInput, match="input 'x' is given more than once"):
        assemble_batch(signature, [tensor("x", [[1, 2]]), tensor("x", [[1, 2]])])


def test_string_outputs_become_bytes_tensors() -> None:
    tensors = to_tensors({"predict": np.array(["setosa", "virginica"])}, ["predict"])
    assert tensors[0].datatype == "BYTES"
    assert list(tensors[0].data) == [b"setosa", b"virginica"]
