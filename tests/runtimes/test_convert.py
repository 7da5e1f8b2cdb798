"""The parity check itself: what it accepts and what it refuses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.runtimes.base import Batch, Runtime
from modelpilot.runtimes.convert import ConvertedRuntime, check_parity, converter_for
from modelpilot.runtimes.onnx import OnnxRuntime
from modelpilot.runtimes.sklearn import SklearnRuntime

SIGNATURE = Signature(
    inputs=(TensorSpec("input-0", "FP64", (-1, 2)),),
    outputs=(TensorSpec("predict", "INT64", (-1,)), TensorSpec("score", "FP64", (-1,))),
)


class Fixed(Runtime):
    """Answers with a label and a score computed from the rows, shifted as told."""

    flavor = "test"

    def __init__(self, shift: float = 0.0, flip: int = 0, fail: bool = False) -> None:
        self.signature = SIGNATURE
        self.shift, self.flip, self.fail = shift, flip, fail

    @classmethod
    def load(cls, path, signature=None, **options):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        if self.fail:
            raise RuntimeError("graph broke")
        x = batch["input-0"]
        labels = (x[:, 0] > 0).astype(np.int64)
        labels[: self.flip] = 1 - labels[: self.flip]
        return {"predict": labels, "score": x.sum(axis=1) + self.shift}


SAMPLE = np.random.default_rng(0).normal(size=(100, 2))


def test_identical_answers_pass() -> None:
    parity = check_parity(Fixed(), Fixed(shift=1e-9), SAMPLE)
    assert parity.ok and parity.rows == 100 and parity.max_abs_diff < 1e-8


def test_numbers_beyond_tolerance_fail() -> None:
    parity = check_parity(Fixed(), Fixed(shift=0.01), SAMPLE)
    assert not parity.ok and "differs by up to 0.01" in parity.reason


def test_a_single_different_label_fails() -> None:
    parity = check_parity(Fixed(), Fixed(flip=1), SAMPLE)
    assert not parity.ok and parity.label_mismatches == 1


def test_a_failing_conversion_fails() -> None:
    parity = check_parity(Fixed(), Fixed(fail=True), SAMPLE)
    assert not parity.ok and "graph broke" in parity.reason


def test_a_float32_graphs_probabilities_stay_within_0_and_1(tmp_path: Path) -> None:
    """A forest's float32 graph sums its trees' votes to 1.0000001 here and there."""
    x, y = load_iris(return_X_y=True)
    original = SklearnRuntime(RandomForestClassifier(10, random_state=0).fit(x, y))
    conversion = converter_for(original, 4)
    assert conversion is not None
    (tmp_path / "forest.onnx").write_bytes(conversion[0](np.float32))
    session = OnnxRuntime.load(tmp_path / "forest.onnx")
    assert isinstance(session, OnnxRuntime)
    fast = ConvertedRuntime(session, original.signature)
    proba = fast.predict({"input-0": x})["predict_proba"]
    assert proba.min() >= 0.0 and proba.max() <= 1.0
    np.testing.assert_allclose(proba, original.predict({"input-0": x})["predict_proba"], atol=1e-6)
