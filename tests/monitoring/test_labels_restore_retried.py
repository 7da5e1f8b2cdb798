"""The restore of labels at start-up, where the inference log does not answer then (a
PostgreSQL blip): tried again each round until it is read, in one line of the log, and the
labels posted meanwhile count once, in time order among those restored."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelpilot.monitoring import monitor_labels
from modelpilot.monitoring.monitor import Monitor
from modelpilot.registry.store import Registry
from tests.database_proxy import DatabaseProxy
from tests.monitoring.proxied_monitor import (
    answer,
    iris_registries,
    quality_window,
    routed_monitor,
)

EVERY = 0.5
"""The monitor's evaluation interval in these tests."""

LOGGED = [f"r{n}" for n in range(40)]
"""The requests the last server answered, and took labels for."""


@dataclass
class Restart:
    here: Monitor
    """The server starting, its inference log through the proxy (the registry straight on)."""
    registry: Registry


@pytest.fixture
def restart(
    proxy: DatabaseProxy,
    postgres_location: str,
    tmp_path: Path,
    iris_model_path: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> Iterator[Restart]:
    """A server that labelled ``LOGGED`` stopped; another starts, which restores labels."""
    reference = iris_frame.assign(species=iris_target)
    direct, through = iris_registries(
        postgres_location, proxy.url, tmp_path / "artifacts", iris_model_path, reference
    )
    before = routed_monitor(direct, direct, direct)
    answer(before, direct, LOGGED)
    assert before.feedback("iris", {r: n % 3 for n, r in enumerate(LOGGED)}).accepted == 40
    before.stop()
    here = routed_monitor(
        direct, through, direct, evaluate_seconds=EVERY, restore=True, restoring=True
    )
    try:
        yield Restart(here, direct)
    finally:
        proxy.up()
        here.stop()
        through.close()
        direct.close()


def test_a_restore_the_log_failed_at_start_up_is_tried_again_until_it_is_read(
    restart: Restart,
    proxy: DatabaseProxy,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tester's server, its PostgreSQL silent for 25 s as it started: "restoring labels
    from the inference log failed; carrying on", and never again. A minute after the
    database was back its quality windows held no label (no accuracy, no concept drift)
    while the log held 1,240 of the last day, and its drift windows were back."""
    # Other servers' labels are read from the server's start on only (not the restore's).
    monkeypatch.setattr(monitor_labels, "LABELS_LAG_SECONDS", 0.0)
    here = restart.here
    with caplog.at_level(logging.INFO, logger="modelpilot.monitoring.monitor"):
        proxy.down()
        here.start()
        time.sleep(6 * EVERY)
        assert quality_window(here) == []
        failures = here.failures
        proxy.up()
        deadline = time.monotonic() + 60
        while len(quality_window(here)) < len(LOGGED):
            assert time.monotonic() < deadline, (
                f"the labels never came back: {quality_window(here)}"
            )
            time.sleep(EVERY)
        said = [r for r in caplog.records if r.name == "modelpilot.monitoring.monitor"]

    # Tried each round (a failure counted each), said once a minute, in a line.
    failed = [r for r in said if "restoring labels from the inference log" in r.getMessage()]
    assert len(failed) == 1, [r.getMessage() for r in said]
    assert "trying again every 0.5 s" in failed[0].getMessage()
    assert not failed[0].exc_info
    assert failures >= 2
    assert not [r for r in said if r.levelno >= logging.ERROR and r is not failed[0]]
    assert len([r for r in said if "quality windows restored" in r.getMessage()]) == 1

    assert sorted(quality_window(here)) == sorted(LOGGED)
    watched = here.model_monitor("iris", 1)
    assert watched is not None and watched.performance.total == 0  # counted when posted
    deadline = time.monotonic() + 60
    while here.restoring:
        assert time.monotonic() < deadline, "still restoring once the labels are back"
        time.sleep(EVERY)
    report = here.report("iris", 1)
    assert report.performance is not None and report.performance.labels == len(LOGGED)
    # Not read again each round, once read.
    time.sleep(4 * EVERY)
    assert len([r for r in caplog.records if "quality windows restored" in r.getMessage()]) == 1


def test_labels_posted_before_a_late_restore_count_once_and_stay_the_newest(
    restart: Restart,
) -> None:
    """Labels posted between the start-up and the restore (the log back, the restore not
    tried again yet): those the log held already, restored, change nothing, and the older
    labels restored go before them in the window, which ages the oldest out first and,
    full, lets the oldest go."""
    here = restart.here
    answer(here, restart.registry, ["n0", "n1"])
    posted = {"n0": 0, "n1": 1, "r0": 0, "r1": 2}  # r0 again as it was; r1 corrected
    assert here.feedback("iris", posted).accepted == 4
    assert quality_window(here) == ["n0", "n1", "r1"]  # r0: the log held it already

    here.restore_labels()  # as a round does once the log answers again
    ids = quality_window(here)
    assert sorted(ids) == sorted([*LOGGED, "n0", "n1"])  # each once
    assert ids[-3:] == ["n0", "n1", "r1"]  # the restored labels are older
    watched = here.model_monitor("iris", 1)
    assert watched is not None
    rows = watched.performance.rows()
    assert [r.at for r in rows] == sorted(r.at for r in rows)
    assert watched.performance.total == 2  # n0 and n1: the others were counted when posted
    r1 = next(r for r in rows if r.key[0] == "r1")
    assert r1.truth == 2  # the correction, not the label it replaced
