"""Joining a round's model calls into batches before they are binned and logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelpilot.monitoring import tap as tap_module
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap import LocalTap
from modelpilot.monitoring.tap_batches import Answered, merge
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


@pytest.fixture(params=["sqlite", "postgres"])
def iris_anywhere(
    request: pytest.FixtureRequest, tmp_path: Path, iris_model_path: Path
) -> Iterator[tuple[Registry, ModelVersion]]:
    """iris:1 in a registry of each kind: its log a SQLite file, or PostgreSQL tables."""
    if request.param == "sqlite":
        location = str(tmp_path / "registry")
    else:
        location = request.getfixturevalue("postgres_location")
    registry = Registry.open(location, tmp_path / "artifacts")
    yield registry, register_model(registry, "iris", iris_model_path)
    registry.close()


def test_a_failed_log_write_is_tried_again_and_what_it_never_takes_is_counted(
    iris_anywhere: tuple[Registry, ModelVersion],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A log that could not be written (PostgreSQL down for 9 s, a full disk) lost every
    request answered meanwhile without a word: no counter moved, and each label posted
    logged a traceback. Now they wait for the log to come back, for up to ``RETRY_SECONDS``;
    what it never takes counts in ``unlogged``; and the error is logged once a minute."""
    registry, version = iris_anywhere
    tap, log = _logging_tap(registry, log_seconds=0.0)
    engine = registry.companion_engine("inference-log")

    def down(renamed: tuple[str, str] = ("inference_log_batches", "aside")) -> None:
        with engine.begin() as conn:  # the log's writes fail until it is back
            conn.exec_driver_sql(f"ALTER TABLE {renamed[0]} RENAME TO {renamed[1]}")

    def back() -> None:
        down(("aside", "inference_log_batches"))

    def answer(first: int) -> None:
        rows = {"input-0": np.array([[5.1, 3.5, 1.4, 0.2]] * 10)}
        ids = [f"r{i}" for i in range(first, first + 10)]
        outputs = {"predict": np.zeros(10, dtype=np.int64)}
        tap.take(merge([Answered(time.time(), version, ids, [1] * 10, rows, outputs)]))

    try:
        answer(0)
        assert log.count() == 10
        down()
        caplog.set_level(logging.ERROR)
        for first in (10, 20, 30):
            answer(first)  # nothing raises: serving and binning go on
        assert (tap.failures, tap.unlogged) == (3, 0)
        assert requests_of(tap) == 40  # the windows have them all
        said = [r for r in caplog.records if "inference log failed" in r.getMessage()]
        assert len(said) == 1 and said[0].exc_info is not None  # once, with its traceback

        back()
        assert log.count() == 10
        answer(40)  # the log is back: the requests that waited go first
        assert log.count() == 50
        assert sorted(log.find("iris", ["r15", "r35", "r45"])) == ["r15", "r35", "r45"]
        assert tap.unlogged == 0

        monkeypatch.setattr(tap_module, "RETRY_SECONDS", 0.0)  # a log down for too long
        down()
        answer(50)
        back()
        assert tap.unlogged == 10
        answer(60)
        assert log.count() == 60 and tap.unlogged == 10  # the dropped ones are gone for good
        assert tap.lookup("iris", ["r55", "r65"]).keys() == {"r65"}
    finally:
        tap.close()
    engine.dispose()


def requests_of(tap: LocalTap) -> int:
    return sum(state.requests for state in tap.states(time.time()))


def test_labels_read_back_keep_each_versions_newest(
    registry: Registry, versions: list[ModelVersion]
) -> None:
    """Labels of a version rolled away from, newer than those of the version served again,
    must not crowd the latter out of what a restart reads back: capped by model, a version's
    window came back with a tenth of its labels and another verdict."""
    tap, _ = _logging_tap(registry, log_seconds=0.0)
    now = time.time()
    old = [f"old-{i}" for i in range(30)]
    new = [f"new-{i}" for i in range(80)]
    for version, ids in ((versions[0], old), (versions[1], new)):
        rows = {"input-0": np.tile([[5.1, 3.5, 1.4, 0.2]], (len(ids), 1))}
        answers = {"predict": np.zeros(len(ids), dtype=int)}
        tap.take(merge([Answered(now, version, ids, [1] * len(ids), rows, answers)]))
    tap.set_labels("iris", dict.fromkeys(old, 0))
    time.sleep(0.01)
    tap.set_labels("iris", dict.fromkeys(new, 1))
    read = tap.labelled_since(now - 60, limit=20)
    by_version: dict[int, list[str]] = {}
    for item in read:
        by_version.setdefault(item.found.version, []).append(item.request_id)
    assert sorted(by_version) == [1, 2]
    assert len(by_version[1]) == 20 and set(by_version[1]) <= set(old)
    assert len(by_version[2]) == 20 and set(by_version[2]) <= set(new)
    assert [item.at for item in read] == sorted(item.at for item in read)  # oldest first
    tap.close()
