"""Joining a round's model calls into batches before they are binned and logged."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap import Answered, LocalTap, merge
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.registration import register_model


@pytest.fixture
def versions(registry: Registry, iris_model_path: Path) -> list[ModelVersion]:
    return [register_model(registry, "iris", iris_model_path) for _ in range(2)]


def call(
    at: float, version: ModelVersion, ids: list[str], x: np.ndarray, **outputs: np.ndarray
) -> Answered:
    """A model call answering ``ids``: one row each, or all of ``x`` for a single id."""
    rows = [1] * len(ids) if len(ids) == len(x) else [len(x)]
    return Answered(at, version, ids, rows, {"x": x}, outputs)


def test_calls_of_one_version_become_one_batch_in_order(versions: list[ModelVersion]) -> None:
    version = versions[0]
    x = np.arange(12.0).reshape(6, 2)
    calls = [
        call(1.0, version, ["a"], x[:1], y=np.array([0])),
        call(2.0, version, ["b", "c"], x[1:3], y=np.array([1, 2])),  # a batch of two requests
        call(3.0, version, ["d"], x[3:6], y=np.array([3, 4, 5])),  # one request of three rows
    ]
    [merged] = merge(calls)
    assert merged.version is version
    assert merged.request_ids == ["a", "b", "c", "d"]
    assert merged.times == [1.0, 2.0, 2.0, 3.0]
    assert merged.rows == [1, 1, 1, 3]
    np.testing.assert_array_equal(merged.inputs["x"], x)
    np.testing.assert_array_equal(merged.outputs["y"], np.arange(6))


def test_versions_and_sets_of_names_are_batched_apart(versions: list[ModelVersion]) -> None:
    one, two = versions
    x = np.ones((1, 2))
    calls = [
        call(1.0, one, ["a"], x, y=np.array([0])),
        call(2.0, two, ["b"], x, y=np.array([1])),
        call(3.0, one, ["c"], x, y=np.array([2]), p=np.array([[0.5, 0.5]])),  # asked for more
        call(4.0, one, ["d"], x, y=np.array([3])),
    ]
    batches = [(m.version.version, m.request_ids, sorted(m.outputs)) for m in merge(calls)]
    assert batches == [(1, ["a", "d"], ["y"]), (2, ["b"], ["y"]), (1, ["c"], ["p", "y"])]


def test_calls_whose_rows_cannot_be_joined_stay_apart(versions: list[ModelVersion]) -> None:
    version = versions[0]
    calls = [
        call(1.0, version, ["a"], np.ones((1, 2)), y=np.array([0])),
        call(2.0, version, ["b"], np.ones((1, 3)), y=np.array([1])),  # another width
    ]
    merged = merge(calls)
    assert [m.request_ids for m in merged] == [["a"], ["b"]]
    assert [m.inputs["x"].shape for m in merged] == [(1, 2), (1, 3)]


def test_zero_dimensional_outputs_are_not_joined(versions: list[ModelVersion]) -> None:
    version = versions[0]
    calls = [
        Answered(1.0, version, ["a"], [1], {"x": np.ones((1, 2))}, {"y": np.array(0.5)}),
        Answered(2.0, version, ["b"], [1], {"x": np.ones((1, 2))}, {"y": np.array(0.7)}),
    ]
    merged = merge(calls)
    assert [m.request_ids for m in merged] == [["a"], ["b"]]
    assert [float(m.outputs["y"]) for m in merged] == [0.5, 0.7]


def test_without_a_full_log_labels_find_the_latest_answers_of_the_last_requests(
    registry: Registry, versions: list[ModelVersion]
) -> None:
    one, two = versions
    tap = LocalTap(registry, MonitorConfig(), log=None, join_capacity=4)
    x = np.arange(10.0).reshape(5, 2)
    tap.take(merge([call(1.0, one, ["a", "b"], x[:2], y=np.array([10, 11]))]))
    tap.take(merge([call(2.0, one, ["c"], x[2:5], y=np.array([12, 13, 14]))]))  # three rows
    tap.take(merge([call(3.0, one, ["b"], x[:1], y=np.array([15]))]))  # "b" answered again
    tap.take(merge([call(4.0, two, ["d", "e"], x[:2], y=np.array([16, 17]))]))

    found = tap.lookup("iris", ["a", "b", "c", "d", "zz"])
    assert sorted(found) == ["b", "c", "d"]  # "a" is older than the last four requests
    assert (found["b"].version, found["b"].outputs["y"].tolist()) == (1, [15])
    assert (found["c"].version, found["c"].outputs["y"].tolist()) == (1, [12, 13, 14])
    assert (found["d"].version, found["d"].outputs["y"].tolist()) == (2, [16])
    assert tap.lookup("other-model", ["b", "c"]) == {}


def _logging_tap(registry: Registry, log_seconds: float) -> tuple[LocalTap, InferenceLog]:
    log = InferenceLog(registry.companion_engine("inference-log"))
    return LocalTap(registry, MonitorConfig(), log, log_seconds=log_seconds), log


def _two_requests(tap: LocalTap, version: ModelVersion) -> None:
    rows = {"input-0": np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])}
    tap.take(
        merge([Answered(1.0, version, ["a", "b"], [1, 1], rows, {"predict": np.array([0, 2])})])
    )


def test_log_writes_wait_together_until_a_lookup_needs_them(
    registry: Registry, versions: list[ModelVersion]
) -> None:
    tap, log = _logging_tap(registry, log_seconds=3600.0)
    _two_requests(tap, versions[0])
    assert log.count() == 0  # taken and binned, not yet written
    found = tap.lookup("iris", ["b"])
    assert found["b"].outputs["predict"] == [2]
    assert log.count() == 2
    tap.close()


def test_log_writes_are_made_when_due_even_without_new_requests(
    registry: Registry, versions: list[ModelVersion]
) -> None:
    tap, log = _logging_tap(registry, log_seconds=0.05)
    _two_requests(tap, versions[0])
    time.sleep(0.1)
    tap.take([])  # the monitoring process's tick when no round came
    assert log.count() == 2
    tap.close()


def test_closing_writes_what_waits_and_labels_find_it(
    registry: Registry, versions: list[ModelVersion]
) -> None:
    tap, log = _logging_tap(registry, log_seconds=3600.0)
    _two_requests(tap, versions[0])
    tap.set_labels("iris", {"a": 1})
    assert log.count() == 2  # labels wrote the requests first
    _two_requests(tap, versions[1])
    tap.close()
    reopened = InferenceLog(registry.companion_engine("inference-log"))
    assert reopened.count() == 4
    assert reopened.find("iris", ["a"])["a"].label == 1
    reopened.close()


def test_a_tap_restores_the_windows_of_the_versions_requests_reach(
    registry: Registry, versions: list[ModelVersion]
) -> None:
    tap, _ = _logging_tap(registry, log_seconds=0.0)
    rows = {"input-0": np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])}
    now = time.time()
    outputs = {"predict": np.array([0, 2])}
    for call in (
        Answered(now - 7200, versions[1], ["a", "b"], [1, 1], rows, outputs),
        Answered(now - 120, versions[0], ["c", "d"], [1, 1], rows, outputs),
        Answered(now - 60, versions[1], ["e", "f"], [1, 1], rows, outputs),
    ):
        tap.take(merge([call]))  # a round each
    tap.close()
    config = MonitorConfig(window_seconds=3600.0)

    def restored(refs: list[str] | None) -> list[tuple[int, int, int]]:
        log = InferenceLog(registry.companion_engine("inference-log"))
        again = LocalTap(registry, config, log, restore=True, refs=refs)
        try:
            return [(s.version, s.window_rows, s.requests) for s in again.states(now)]
        finally:
            again.close()

    # iris reaches version 2 (its latest): of it, the last hour's requests, windows only.
    assert restored(None) == [(2, 2, 0)]
    assert restored(["iris"]) == [(2, 2, 0)]
    # Version 1, rolled away from, comes back only for a server of iris:1.
    assert restored(["iris:1"]) == [(1, 2, 0)]
    assert restored(["other"]) == []
