"""A model that fails in the server log: each kind of failure once with the model's own
traceback, named by version, then summed up once per interval, never once per request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelpilot.config import Settings
from modelpilot.errors import ModelFailure
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.serving.calls import ModelFailures, checked_predict
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.inputs import assemble_batch, requested_outputs
from modelpilot.serving.registration import register_model

FAILING = """
import numpy as np

class Model:
    def predict(self, x):
        if x[0, 0] == 1:
            raise RuntimeError(f"boom on input {x[0, 1]:g}")
        if x[0, 0] == 3:
            return np.zeros((len(x) + 5, 7))
        if x[0, 0] == 4:
            return {"a": 1}[x[0]]  # a bug of the model's: TypeError, unhashable array
        return x.sum(axis=1)
"""

CALLS = "modelpilot.serving.calls"


@pytest.fixture
async def engine(registry: Registry, tmp_path: Path) -> AsyncIterator[InferenceEngine]:
    """An engine serving ``failing`` version 1: a first feature of 1 raises, 3 answers a
    wrong shape, anything else the row's sum."""
    path = tmp_path / "failing.py"
    path.write_text(FAILING)
    register_model(registry, "failing", path, flavor="python")
    engine = InferenceEngine(registry, Settings(registry=registry.location), [ModelRef("failing")])
    await engine.start()
    yield engine
    await engine.stop()


def logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == CALLS]


async def test_a_failure_is_logged_with_the_models_traceback_and_repeats_are_counted(
    engine: InferenceEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Fifty requests answered 500 left no line in the log, even at debug level, and the
    line of the model that raised was nowhere: the answer has the exception's message only."""
    caplog.set_level(logging.DEBUG)
    loaded = await engine.get_model("failing")
    signature = loaded.version.signature
    names = requested_outputs(signature, [])
    failures = ModelFailures(loaded.version, seconds=0.3)

    def call(*row: float) -> None:
        batch = assemble_batch(signature, request_from_rows([list(row)]).inputs)
        with pytest.raises(ModelFailure):
            checked_predict(loaded.runtime, batch, names, failures)

    for n in range(20):  # one kind, whatever its message says
        call(1.0, n)
    call(3.0, 0.0)  # another kind: a wrong shape
    first, shape = logged(caplog)
    assert first.levelno == logging.ERROR
    assert first.getMessage() == (
        "failing:1 failed on a call of 1 row(s): the model failed while predicting: "
        "RuntimeError: boom on input 0"
    )
    assert first.exc_info is not None
    traceback = logging.Formatter().formatException(first.exc_info)
    assert 'raise RuntimeError(f"boom on input {x[0, 1]:g}")' in traceback.splitlines()[-2]
    assert shape.getMessage() == (
        "failing:1 failed on a call of 1 row(s): the model returned (6, 7) for output "
        "'predict'; expected one row per input row (1)"
    )
    assert not shape.exc_info

    await asyncio.sleep(0.35)
    call(1.0, 99.0)
    assert len(logged(caplog)) == 3
    assert logged(caplog)[-1].getMessage() == (
        "failing:1 failed on a call of 1 row(s): the model failed while predicting: "
        "RuntimeError: boom on input 99 (20 times since it was last logged: it is logged "
        "once every 0.3 s)"
    )


async def test_requests_the_model_fails_on_are_logged_by_the_engine(
    engine: InferenceEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the one path every transport takes: the first failure at once, named by
    version, the next ones (within the minute) not at all; the requests still get their 500."""
    caplog.set_level(logging.INFO)
    for n in range(10):
        with pytest.raises(ModelFailure, match="boom on input"):
            await engine.infer("failing", request_from_rows([[1.0, float(n)]]))
    response = await engine.infer("failing", request_from_rows([[2.0, 5.0]]))
    assert response.outputs[0].data.tolist() == [7.0]
    records = logged(caplog)
    assert [r.getMessage() for r in records] == [
        "failing:1 failed on a call of 1 row(s): the model failed while predicting: "
        "RuntimeError: boom on input 0"
    ]
    assert records[0].exc_info is not None


async def test_a_model_raising_what_marks_bad_input_is_logged_as_a_warning(
    engine: InferenceEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """ValueError and TypeError are answered 422 (scikit-learn raises them for input it
    rejects), but a model's own bug raises them too: 60 such requests left no line."""
    from modelpilot.errors import InvalidInput

    caplog.set_level(logging.INFO)
    for n in range(5):
        with pytest.raises(InvalidInput, match="the model rejected the input"):
            await engine.infer("failing", request_from_rows([[4.0, float(n)]]))
    records = logged(caplog)
    assert [r.levelno for r in records] == [logging.WARNING]
    assert (
        records[0]
        .getMessage()
        .startswith(
            "failing:1 rejected the input of a call of 1 row(s) (answered 422; if the input was "
            "right, the model raised it): the model rejected the input: "
        )
    )
    assert records[0].exc_info is not None
    assert 'return {"a": 1}[x[0]]' in caplog.text  # the model's own line


async def test_repeats_not_yet_counted_are_logged_when_the_engine_stops(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A burst of 50 failures that stopped showed as one line: its repeats were counted only
    when the next failure came after the minute, and never on the way out."""
    path = tmp_path / "failing.py"
    path.write_text(FAILING)
    register_model(registry, "failing", path, flavor="python")
    engine = InferenceEngine(registry, Settings(registry=registry.location), [ModelRef("failing")])
    await engine.start()
    caplog.set_level(logging.INFO)
    try:
        for n in range(6):
            with pytest.raises(ModelFailure):
                await engine.infer("failing", request_from_rows([[1.0, float(n)]]))
        assert len(logged(caplog)) == 1
    finally:
        await engine.stop()
    messages = [r.getMessage() for r in logged(caplog)]
    assert len(messages) == 2
    assert messages[1] == (
        "failing:1 failed on a call of 1 row(s): the model failed while predicting: "
        "RuntimeError: boom on input 5 (5 times since it was last logged)"
    )
