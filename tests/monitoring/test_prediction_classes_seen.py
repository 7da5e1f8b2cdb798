"""A classifier that names no classes (a ``.py`` model answering text or whole numbers): its
predictions are counted by class as they come, merged by name over processes, up to
``SEEN_CLASSES`` classes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from modelpilot.monitoring.model_metrics import ModelCollector
from modelpilot.monitoring.model_monitor import ModelMonitor, MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.monitor_state import totals_of
from modelpilot.monitoring.predictions import OTHER_CLASS, SEEN_CLASSES
from modelpilot.monitoring.siblings import WorkerExchange
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import dead_pid

TEXT = (
    "import numpy as np\n"
    "class Model:\n"
    '    task = "classification"\n'
    "    def predict(self, x):\n"
    "        return np.asarray(x, dtype=float)[:, 0].astype(int).astype(str)\n"
)
"""Labels of text (its first feature's whole part), naming no classes."""

WHOLE = (
    "import numpy as np\n"
    "class Model:\n"
    '    task = "classification"\n'
    "    def predict(self, x):\n"
    "        return np.asarray(x, dtype=float)[:, 0].astype(np.int64)\n"
)
"""Labels of whole numbers (INT64), naming no classes."""


def watched(
    registry: Registry, tmp_path: Path, source: str, reference: pd.DataFrame | None = None
) -> ModelMonitor:
    path = tmp_path / "model.py"
    path.write_text(source)
    version = register_model(registry, "m", path, flavor="python", reference=reference)
    profile = registry.reference_profile("m", 1) if reference is not None else None
    return ModelMonitor(version, profile, MonitorConfig(window_seconds=1e12))


def another(monitor: ModelMonitor) -> ModelMonitor:
    """The same version's monitor in another process (a sibling worker, a tap)."""
    return ModelMonitor(monitor.version, None, monitor.config)


def predict(monitor: ModelMonitor, labels: list[object], at: float = 1000.0) -> None:
    assert monitor.predictions is not None
    monitor.observe(len(labels), None, {monitor.predictions.output: np.array(labels)}, at)


def classes(monitor: ModelMonitor, *peers: ModelMonitor) -> tuple[dict[str, int], dict[str, int]]:
    """The window's predictions by class, and the totals since start, as ``monitor``
    reports them merged with ``peers``."""
    report = monitor.report(2000.0, [p.state(2000.0) for p in peers])
    assert report.predictions is not None and report.predictions.classes is not None
    return report.predictions.classes, report.classes_total


@pytest.mark.parametrize(
    ("source", "labels"),
    [(TEXT, ["cat", "dog", "cat"]), (WHOLE, np.array([3, 7, 3], dtype=np.int64))],
    ids=["text", "int64"],
)
def test_labels_of_a_classifier_that_names_no_classes_are_counted_by_class(
    registry: Registry, tmp_path: Path, source: str, labels: list[object]
) -> None:
    """Every prediction of such a model was "(unknown)" in the window, and in none of the
    totals (no modelpilot_prediction_class_total series at all)."""
    monitor = watched(registry, tmp_path, source)
    predict(monitor, list(labels))
    first, second = (str(label) for label in labels[:2])
    expected = {first: 2, second: 1}
    assert classes(monitor) == (expected, expected)


def test_workers_that_saw_their_classes_in_other_orders_merge_them_by_name(
    registry: Registry, tmp_path: Path
) -> None:
    """Counts were merged by position: "cat" seen first by one worker and "dog" first by
    the other, each was counted as the other's."""
    first = watched(registry, tmp_path, TEXT)
    second, reader = another(first), another(first)
    predict(first, ["cat", "cat", "dog"])
    predict(second, ["dog", "bird", "bird", "bird"])
    expected = {"cat": 2, "dog": 2, "bird": 3}
    # The reader counted none itself (the server's process, whose tap counts).
    assert classes(reader, first, second) == (expected, expected)
    assert classes(first, second) == (expected, expected)
    assert classes(second, first) == (expected, expected)
    # States pickled as the snapshots and the tap's pipe carry them, and a dead worker's
    # totals carried on by its successor, merge by name too.
    dead = pickle.loads(pickle.dumps(totals_of(second.state(2000.0))))
    report = reader.report(2000.0, [first.state(2000.0), dead])
    assert report.classes_total == expected
    assert report.predictions is not None
    assert report.predictions.classes == {"cat": 2, "dog": 1, "bird": 0}


def test_classes_past_the_bound_are_counted_as_other(registry: Registry, tmp_path: Path) -> None:
    """A model answering free text (an id a row) makes at most ``SEEN_CLASSES`` classes a
    version; the first seen keep theirs, in a process and merged over processes."""
    alone = watched(registry, tmp_path, TEXT)
    names = [f"c{i}" for i in range(SEEN_CLASSES + 5)]
    predict(alone, names)
    window, totals = classes(alone)
    assert window == totals
    assert list(totals) == [*names[:SEEN_CLASSES], OTHER_CLASS]
    assert totals[OTHER_CLASS] == 5 and sum(totals.values()) == len(names)
    # Two workers, each under the bound, of more classes than it between them.
    first, second, reader = another(alone), another(alone), another(alone)
    predict(first, names[: SEEN_CLASSES - 5])
    predict(second, [f"d{i}" for i in range(10)] + ["c0"])
    window, totals = classes(reader, first, second)
    assert window == totals
    assert list(totals) == [*names[: SEEN_CLASSES - 5], *(f"d{i}" for i in range(5)), OTHER_CLASS]
    assert totals["c0"] == 2 and totals["d4"] == 1 and totals[OTHER_CLASS] == 5


def test_classes_the_reference_names_come_first_and_its_drift_pools_the_rest(
    registry: Registry, tmp_path: Path
) -> None:
    """With a reference, the classes it predicted keep their slots, and classes it never
    predicted count against the reference's pooled rest, as before."""
    reference = pd.DataFrame({"a": [1.0, 2.0, 1.0, 2.0], "b": [0.0, 0.0, 0.0, 0.0]})
    monitor = watched(registry, tmp_path, TEXT, reference)
    predict(monitor, ["1", "9", "2", "1"])
    report = monitor.report(2000.0)
    assert report.predictions is not None
    assert report.predictions.classes == {"1": 2, "2": 1, "9": 1}
    # [1/2, 1/2, 0] against [2/4, 1/4, 1/4]: the reference named no "9".
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.25, 0.25])
    m = (p + q) / 2
    divergence = sum(x * np.log2(x / y) for x, y in zip(p, m, strict=True) if x) + sum(
        x * np.log2(x / y) for x, y in zip(q, m, strict=True) if x
    )
    assert report.predictions.drift == pytest.approx(np.sqrt(divergence / 2))


def _class_totals(monitor: Monitor) -> dict[str, float]:
    """``modelpilot_prediction_class_total`` of m:1, by class, as a scrape reads it."""
    scraped = CollectorRegistry()
    scraped.register(ModelCollector(monitor))
    return {
        sample.labels["class"]: sample.value
        for family in scraped.collect()
        for sample in family.samples
        if sample.name == "modelpilot_prediction_class_total" and sample.labels["model"] == "m"
    }


def test_the_scrape_sums_every_workers_classes_by_name(registry: Registry, tmp_path: Path) -> None:
    """/metrics of ``--workers``, summed over the workers' snapshots by position: the classes
    of a version that names none had no series at all."""
    first = watched(registry, tmp_path, TEXT)
    second = another(first)
    predict(first, ["cat", "cat", "dog"])
    predict(second, ["dog", "bird"])
    directory = tmp_path / "workers"
    directory.mkdir()
    gone = dead_pid()
    WorkerExchange(directory, 0, CollectorRegistry(), pid=gone).publish([first.state(2000.0)])
    # Worker 0 died; the one started in its place carries its totals on.
    successor = WorkerExchange(directory, 0, CollectorRegistry(), pid=os.getppid())
    (directory / f"worker-{gone}.snapshot").rename(directory / f"retired-0-{gone}.snapshot")
    successor.publish([totals_of(s) for s in successor.inherit()])
    reader = WorkerExchange(directory, 1, CollectorRegistry())
    reader.publish([second.state(2000.0)])
    monitor = Monitor(registry, exchange=reader)
    try:
        assert _class_totals(monitor) == {"cat": 2.0, "dog": 2.0, "bird": 1.0}
    finally:
        monitor.stop()
