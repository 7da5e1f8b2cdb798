"""Errors about the features of a wide model: the count, the first names and how many more,
not all 200 names (a wrong-width error was 1.3 KB of them)."""

from __future__ import annotations

import numpy as np
import pytest

from modelpilot.errors import InvalidInput
from modelpilot.protocol.types import Tensor
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.serving.inputs import assemble_batch

NAMES = tuple(f"f{i}" for i in range(200))
WIDE = Signature(
    inputs=(TensorSpec("x", "FP64", (-1, 200)),),
    outputs=(TensorSpec("predict", "INT64", (-1,)),),
    feature_names=NAMES,
)


def tensor(name: str, data: object) -> Tensor:
    array = np.asarray(data, dtype=np.float64)
    return Tensor(name, "FP64", array.shape, array)


def refusal(inputs: list[Tensor]) -> str:
    with pytest.raises(InvalidInput) as caught:
        assemble_batch(WIDE, inputs)
    return caught.value.message


def test_a_row_one_feature_short_names_the_first_features_and_the_count() -> None:
    message = refusal([tensor("x", np.zeros((1, 199)))])
    assert message == (
        "input 'x' has 199 features per row; the model takes 200 "
        "(f0, f1, f2, f3, f4, f5, f6, f7, f8, f9 and 190 more)"
    )


def test_features_by_name_say_which_are_missing_and_unknown() -> None:
    sent = [tensor(n, [1.0]) for n in NAMES[:150]] + [tensor(f"g{i}", [1.0]) for i in range(30)]
    message = refusal(sent)
    missing = ", ".join(repr(n) for n in NAMES[150:160])
    unknown = ", ".join(repr(f"g{i}") for i in range(10))
    taken = ", ".join(repr(n) for n in NAMES[:10])
    assert message == (
        f"missing features [{missing} and 40 more]; unknown features [{unknown} and 20 more]; "
        f"the model takes [{taken} and 190 more]"
    )
    assert len(message) < 400
