"""The inference log gives back what the model was given: +inf and -inf, and bytes.

A tester sent rows holding +inf and -inf, and read them back from the log as null, as NaN
is: ``drift --model`` and the windows a restarted server restored then counted them as
missing (a 50% missing share), where the live monitor had counted them as values. Bytes
that are not UTF-8 were logged as text, with U+FFFD in place of each byte that is not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import LogBatch, log_batch
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.offline import log_rows
from modelpilot.monitoring.tap import monitor_of
from modelpilot.registry.signature import Signature
from modelpilot.registry.store import Registry

INF = float("inf")
ROWS = np.array([[1.0, INF], [-INF, np.nan], [1e-310, -0.0]])
"""Three requests of one row each: infinities, NaN, a subnormal and a negative zero."""

SIGNATURE = Signature.from_dict(
    {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}],
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
    }
)

PNG = b"\x89PNG\r\n\x1a\n\xff\xfe"


def a_round(words: bool) -> LogBatch:
    """``ROWS`` as three requests: packed, or as JSON when an output is text (a classifier
    with named classes), which once wrote the infinities as null."""
    outputs = np.array(["a", "b", "c"], dtype=object) if words else np.array([INF, -INF, 0.0])
    return log_batch(
        "m", 1, ["r0", "r1", "r2"], [1.0, 2.0, 3.0], [1, 1, 1], {"x": ROWS}, {"y": outputs}
    )


@pytest.mark.parametrize("words", [False, True], ids=["packed", "json"])
def test_infinities_come_back_as_infinities_and_nan_as_null(log: InferenceLog, words: bool) -> None:
    log.append([a_round(words)])
    found = log.find("m", ["r0", "r1", "r2"])
    assert found["r0"].inputs == {"x": [[1.0, INF]]}
    assert found["r1"].inputs == {"x": [[-INF, None]]}  # NaN is null, as it always was
    assert found["r2"].inputs == {"x": [[1e-310, -0.0]]}
    assert str(found["r2"].inputs["x"][0][1]) == "-0.0"
    assert found["r1"].outputs == {"y": ["b"] if words else [-INF]}
    window = log.recent("m")
    assert [e.inputs["x"] for e in window] == [[[1.0, INF]], [[-INF, None]], [[1e-310, -0.0]]]
    # What ``drift --model`` compares: the infinities are values, only NaN is missing.
    rows = log_rows(window, SIGNATURE)
    np.testing.assert_array_equal(rows, ROWS)


def test_a_batch_cut_to_the_bound_keeps_its_infinities(tmp_path: Path) -> None:
    """A batch larger than the log's bound is written as its newest requests (decoded and
    encoded again): its marked columns too."""
    registry = Registry.open(str(tmp_path / "registry"), tmp_path / "artifacts")
    log = InferenceLog(registry.companion_engine("inference-log"), max_rows=2)
    try:
        log.append([a_round(words=True)])
        assert [e.inputs["x"] for e in log.recent("m")] == [[[-INF, None]], [[1e-310, -0.0]]]
    finally:
        log.close()
        registry.close()


def test_bytes_that_are_not_utf8_come_back_as_bytes_and_text_as_text(log: InferenceLog) -> None:
    inputs = {
        "color": np.array([PNG, b"ok"], dtype=object),
        "name": np.array([b"caf\xc3\xa9", "a\x00b"], dtype=object),  # UTF-8 bytes, and text
        "age": np.array([INF, 2.0]),
    }
    outputs = {"y": np.array([1.0, 2.0])}
    log.append([log_batch("m", 1, ["p0", "p1"], [1.0, 2.0], [1, 1], inputs, outputs)])
    found = log.find("m", ["p0", "p1"])
    assert found["p0"].inputs == {"color": [PNG], "name": ["café"], "age": [INF]}
    # Text where UTF-8, as in any column: the other value's bytes do not make it bytes.
    assert found["p1"].inputs == {"color": ["ok"], "name": ["a\x00b"], "age": [2.0]}


@pytest.mark.parametrize("words", [False, True], ids=["packed", "json"])
def test_halves_come_back_as_the_numbers_sent(log: InferenceLog, words: bool) -> None:
    """A half (FP16) came back from a round written as JSON as its shortest float32 text:
    0.099975586 for the 0.0999755859375 sent, which the answer itself had given exactly."""
    halves = np.array([0.1, 65504, -3.5, 6e-8], dtype=np.float16)
    outputs = np.array(["a"] * 4, dtype=object) if words else halves
    ids = [f"h{i}" for i in range(4)]
    log.append([log_batch("m", 1, ids, [1.0] * 4, [1] * 4, {"x": halves}, {"y": outputs})])
    found = log.find("m", ids)
    assert [found[i].inputs["x"] for i in ids] == [[float(v)] for v in halves]
    if not words:
        assert [found[i].outputs["y"] for i in ids] == [[float(v)] for v in halves]


def test_a_restored_window_counts_infinities_as_the_live_one_did(labelled_iris: Registry) -> None:
    """The live monitor counts +inf and -inf as missing, as the reference profile does; the
    window a restarted server put back from the log counts them so too."""
    rows = np.tile([5.1, 3.5, 1.4, 0.2], (200, 1))
    rows[:100, 0] = INF
    rows[100:150, 1] = -INF
    rows[150:, 2] = np.nan
    predict = np.zeros(200, dtype=np.int64)
    version = labelled_iris.get_version("iris", 1)
    config = MonitorConfig(window_seconds=1e12)
    live = monitor_of({}, labelled_iris, version, config)
    live.observe(200, rows, {"predict": predict}, 1_000.0)
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    try:
        times = [1_000.0] * 200
        ids = [f"r{i}" for i in range(200)]
        log.append(
            [log_batch("iris", 1, ids, times, [1] * 200, {"input-0": rows}, {"predict": predict})]
        )
        restored = monitor_of({}, labelled_iris, version, config)
        assert restored.restore(log.recent("iris")) is None
    finally:
        log.close()
    before, after = live.report(2_000.0).drift, restored.report(2_000.0).drift
    assert before is not None and after is not None
    shares = {f.name: f.missing_share for f in after.features}
    assert shares == {
        "sepal_length": 0.5,
        "sepal_width": 0.25,
        "petal_length": 0.25,
        "petal_width": 0.0,
    }
    assert [(f.name, f.method, f.missing_share, f.psi) for f in after.features] == [
        (f.name, f.method, f.missing_share, f.psi) for f in before.features
    ]
