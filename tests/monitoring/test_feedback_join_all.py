"""A post's labels joined together (``join_all``): the same pairs, probabilities and errors
as joined one by one (``join``), whatever form the predictions come in (arrays from memory,
lists from the log, several rows or targets, odd ones), with each distinct label checked
once and the monitor's lock free while they are checked."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from modelpilot.errors import InvalidInput
from modelpilot.monitoring import monitor_labels
from modelpilot.monitoring.feedback import Joined, join, join_all
from modelpilot.monitoring.model_monitor import ModelMonitor
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.tap_batches import Found
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model


@pytest.fixture
def monitor(
    labelled_iris: Registry, tmp_path: Path, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> Iterator[Monitor]:
    """``iris`` (a classifier with probabilities) and ``multi`` (a regression of two
    targets), both with reference data."""
    x, y = diabetes_data
    path = tmp_path / "multi.joblib"
    joblib.dump(LinearRegression().fit(x, np.column_stack([y, y * 0.5 + 3])), path)
    columns = [f"x{i}" for i in range(10)]
    register_model(labelled_iris, "multi", path, reference=pd.DataFrame(x[:100], columns=columns))
    monitor = Monitor(labelled_iris)
    yield monitor
    monitor.stop()


def _iris(predict: Any, proba: Any = None) -> Found:
    outputs = {"predict": predict}
    if proba is not None:
        outputs["predict_proba"] = proba
    return Found("iris", 1, outputs)


def _posts() -> dict[str, tuple[dict[str, Any], dict[str, Found]]]:
    """Posts (labels, their predictions found) of every form the predictions come in."""
    p = np.array([[0.7, 0.2, 0.1]])
    found = {
        "a0": _iris(np.array([0]), p),  # from memory: arrays
        "a1": _iris(np.array([2, 1]), np.vstack([p, p])),  # two rows
        "a2": _iris(np.array([[1]]), p),  # a column
        "a3": _iris(np.array([1.0]), p),  # another dtype
        "z0": _iris(np.array([0]), p),
        "z1": _iris(np.array([0]), p),
        "l0": _iris([1], p.tolist()),  # from the log: lists
        "l1": _iris([0, 2], [[0.5, 0.5, 0.0], [0.1, 0.1, 0.8]]),
        "l2": _iris([np.int64(2)], p.tolist()),  # odd: one by one
        "s0": _iris(np.array(["1"]), p),  # text
        "m0": Found("multi", 1, {"predict": np.array([[10.0, 8.0]])}),
        "m1": Found("multi", 1, {"predict": [[10.0, 8.0], [1.5, 2.5]]}),
        "m2": Found("multi", 1, {"predict": np.array([[3.0, 4.0], [5.0, 6.0]], np.float32)}),
    }
    labels = {
        "a0": 0,
        "a1": [2, 0],
        "unknown": 1,
        "a2": 1.0,
        "a3": "1",
        "z0": 0.0,
        "z1": -0.0,
        "l0": 1,
        "l1": [0, 2],
        "l2": 2,
        "s0": 1,
        "m0": [11.0, 7.5],
        "m1": [[9.0, 8.0], [1.0, -0.0]],
        "m2": [[3, 4], [5.5, 6]],
    }
    return {
        "every form": (labels, found),
        "the same label again and again": (
            {f"r{n}": n % 3 for n in range(300)},
            {f"r{n}": _iris([n % 2], p.tolist()) for n in range(300)},
        ),
        "a class it does not have, late in the post": (
            {**{f"r{n}": 1 for n in range(50)}, "bad": 7, "late": [1, 2]},
            {
                **{f"r{n}": _iris([1], p) for n in range(50)},
                "bad": _iris([1], p),
                "late": _iris([1], p),
            },
        ),
        "rows miscounted, before a bad class": (
            {"two": 1, "bad": 7},
            {"two": _iris(np.array([1, 2]), np.vstack([p, p])), "bad": _iris([1], p)},
        ),
        "no rows": ({"none": 1, "bad": 7}, {"none": _iris(np.array([], int)), "bad": _iris([1])}),
        "targets miscounted": ({"m": [1.0]}, {"m": Found("multi", 1, {"predict": [[1.0, 2.0]]})}),
        "no such version": ({"a": 1, "gone": 1}, {"a": _iris([1]), "gone": Found("iris", 9, {})}),
    }


def _one_by_one(
    monitor: Monitor, labels: dict[str, Any], found: dict[str, Found]
) -> tuple[list[Joined], dict[str, Any], list[str]]:
    joined, matched, unknown = [], {}, []
    for request_id, label in labels.items():
        if request_id not in found:
            unknown.append(request_id)
            continue
        prediction = found[request_id]
        watched = monitor_labels._version_monitor(monitor, prediction.model, prediction.version)
        joined.append(join(watched, request_id, label, prediction.outputs))
        matched[request_id] = label
    return joined, matched, unknown


def _outcome(run: Callable[[], tuple[list[Joined], dict[str, Any], list[str]]]) -> Any:
    """What a join gave, to compare: its pairs with their types, the probabilities of each
    row as applied, or the error."""
    try:
        joined, matched, unknown = run()
    except Exception as exc:
        return type(exc), str(exc)
    rows = [
        (
            j.monitor.version.key,
            j.request_id,
            [(t, type(t), p, type(p)) for t, p in j.pairs],
            None if j.proba is None else np.asarray(j.proba, dtype=float).tolist(),
        )
        for j in joined
    ]
    return rows, matched, unknown


@pytest.mark.parametrize("post", list(_posts()))
def test_a_post_joined_together_is_joined_as_one_by_one(monitor: Monitor, post: str) -> None:
    labels, found = _posts()[post]
    together = _outcome(
        lambda: join_all(labels, found, lambda m, v: monitor_labels._version_monitor(monitor, m, v))
    )
    assert together == _outcome(lambda: _one_by_one(monitor, labels, found))
    if post == "every form":  # nothing refused: it is the form that is compared
        assert isinstance(together[0], list) and len(together[0]) == 13
        truths = {rid: str(pairs[-1][0]) for _, rid, pairs, _ in together[0]}
        assert (truths["z0"], truths["z1"]) == ("0.0", "-0.0")  # told apart, checked once each
        assert truths["m1"] == "(1.0, -0.0)"
    if post.startswith(("a class", "rows", "targets")):
        assert together[0] is InvalidInput, together
    if post.startswith(("no rows", "no such")):  # raised where one by one raises it
        assert isinstance(together[0], type) and issubclass(together[0], Exception), together


def test_each_distinct_label_is_checked_once_and_the_lock_is_free_meanwhile(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A post of 50,000 labels checked each (a set of the classes built again for each),
    holding the monitor's lock all along: 0.64 s of CPU against the event loop, and any
    reader of the reports waited for the whole post."""
    watched: ModelMonitor = monitor_labels._version_monitor(monitor, "iris", 1)
    checks: list[Any] = []
    held: list[bool] = []
    checked = watched.performance.checked

    def counted(truth: Any, values: int = 1) -> Any:
        checks.append(truth)
        # Another thread (a reader) can take the lock while the labels are checked.
        other = threading.Thread(target=read)
        other.start()
        other.join()
        return checked(truth, values)

    def read() -> None:
        taken = monitor._lock.acquire(timeout=1)
        held.append(taken)
        if taken:
            monitor._lock.release()

    monkeypatch.setattr(watched.performance, "checked", counted)
    p = [[0.7, 0.2, 0.1]]
    labels = {f"r{n}": [0, 1, 2, "1", 1.0, 2.0][n % 6] for n in range(600)}
    found = {rid: _iris([n % 3], p) for n, rid in enumerate(labels)}
    joined, _, _ = join_all(
        labels, found, lambda m, v: monitor_labels._locked_monitor(monitor, m, v)
    )
    assert len(joined) == 600
    assert checks == [0, 1, 2, "1", 1.0, 2.0]  # 1.0 is not 1 (its type)
    assert all(held)
