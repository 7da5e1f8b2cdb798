"""The inference log on both backends: written in batches, found by id, labelled, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelpilot.monitoring.inference_log import InferenceLog, LogEntry, jsonable
from modelpilot.registry.store import Registry


@pytest.fixture(params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InferenceLog]:
    if request.param == "sqlite":
        location = str(tmp_path / "registry")
    else:
        location = request.getfixturevalue("postgres_location")
    registry = Registry.open(location, tmp_path / "artifacts")
    log = InferenceLog(registry.companion_engine("inference-log"), max_rows=100)
    yield log
    log.close()
    registry.close()


def entry(request_id: str, model: str = "m", version: int = 1, at: float = 0.0) -> LogEntry:
    return LogEntry(request_id, model, version, at, {"x": [[1.0, 2.0]]}, {"y": [1]})


def test_entries_round_trip_and_take_labels(log: InferenceLog) -> None:
    log.write([entry("a"), entry("b"), entry("c", model="other")])
    found = log.find("m", ["a", "b", "c", "zzz"])
    assert sorted(found) == ["a", "b"]  # "c" belongs to another model
    assert found["a"].inputs == {"x": [[1.0, 2.0]]} and found["a"].outputs == {"y": [1]}
    log.set_labels("m", {"a": [1], "b": "cat"})
    labelled = log.find("m", ["a", "b"])
    assert labelled["a"].label == [1] and labelled["b"].label == "cat"
    assert log.count() == 3 and log.count("m") == 2


def test_log_is_bounded_to_the_newest_rows(log: InferenceLog) -> None:
    for start in range(0, 250, 25):
        log.write([entry(f"r{i}", at=float(i)) for i in range(start, start + 25)])
    assert log.count() <= 100 + 25  # trimmed after each write passing a tenth of the bound
    log.trim()
    assert log.count() == 100
    newest = log.recent("m", limit=3)
    assert [e.request_id for e in newest] == ["r247", "r248", "r249"]
    assert log.find("m", ["r0"]) == {}


def test_recent_filters_by_version_and_time(log: InferenceLog) -> None:
    log.write([entry("a", version=1, at=10), entry("b", version=2, at=20), entry("c", at=30)])
    assert [e.request_id for e in log.recent("m", version=1)] == ["a", "c"]
    assert [e.request_id for e in log.recent("m", since=15)] == ["b", "c"]


def test_jsonable_handles_nan_bytes_and_matrices() -> None:
    arrays = {
        "f": np.array([[1.0, np.nan]]),
        "s": np.array([b"a", b"b"], dtype=object),
        "i": np.array([1, 2], dtype=np.int64),
    }
    assert jsonable(arrays) == {"f": [[1.0, None]], "s": ["a", "b"], "i": [1, 2]}
