"""The monitor's thread while this process's registry does not answer but the monitoring
process (the inference log) does, as after a PostgreSQL outage, the registry still in its
silence pause: it keeps its cadence, logs one line, counts a failure per round, and the
labels other servers took meanwhile reach it once the registry is back."""

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

OUTAGE = 4.0
"""How long the registry refuses: eight intervals."""


@dataclass
class Servers:
    here: Monitor
    """A server whose registry goes through the proxy, its log (its tap) straight on."""
    other: Monitor
    """Another server of the same registry, which takes labels meanwhile."""
    registry: Registry
    """The registry, straight on."""


@pytest.fixture
def servers(
    proxy: DatabaseProxy,
    postgres_location: str,
    tmp_path: Path,
    iris_model_path: Path,
    iris_frame: pd.DataFrame,
    iris_target: np.ndarray,
) -> Iterator[Servers]:
    reference = iris_frame.assign(species=iris_target)
    direct, through = iris_registries(
        postgres_location, proxy.url, tmp_path / "artifacts", iris_model_path, reference
    )
    here = routed_monitor(through, direct, direct, evaluate_seconds=EVERY)
    other = routed_monitor(direct, direct, direct)
    try:
        yield Servers(here, other, direct)
    finally:
        proxy.up()
        here.stop()
        other.stop()
        through.close()
        direct.close()


def test_a_registry_that_does_not_answer_costs_a_round_a_line_and_no_labels(
    servers: Servers,
    proxy: DatabaseProxy,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tester's server, its PostgreSQL back after 13 s of silence: the monitoring process
    answered, the registry still did not (its 10 s pause), and the thread, whose look for
    other servers' labels failed before it evaluated, tried again at once: 121 tracebacks
    in 0.9 s, 138 failures counted, no evaluation. Those labels were read and dropped, too:
    with an outage longer than the look's reach back, they never came."""
    # Looks reach back no further than the last: a label missed is missed for good.
    monkeypatch.setattr(monitor_labels, "LABELS_LAG_SECONDS", 0.0)
    here, other = servers.here, servers.other
    answer(here, servers.registry, ["h0"])  # iris:1 is watched here
    here.start()
    time.sleep(2 * EVERY)  # a round or two with the registry answering

    with caplog.at_level(logging.INFO, logger="modelpilot.monitoring.monitor"):
        caplog.clear()
        proxy.down()
        failures, points = here.failures, len(here.history.points)
        answer(other, servers.registry, [f"o{n}" for n in range(5)])
        taken = other.feedback("iris", {f"o{n}": n % 3 for n in range(5)})
        assert taken.accepted == 5
        time.sleep(OUTAGE)
        failed = here.failures - failures
        evaluated = len(here.history.points) - points
        said = [r for r in caplog.records if r.name == "modelpilot.monitoring.monitor"]

    rounds = OUTAGE / EVERY
    assert 1 <= failed <= rounds + 2, failed  # one a round, not one a spin of the loop
    assert evaluated >= 2  # the rounds go on evaluating, at their interval
    # Once a minute, in one line (the registry says once where and why, in its own).
    assert len(said) == 1, [r.getMessage() for r in said]
    (line,) = said
    assert "reading other servers' labels failed" in line.getMessage()
    assert "does not answer for now" in line.getMessage()
    assert not line.exc_info  # no traceback

    proxy.up()
    wanted = {f"o{n}" for n in range(5)}
    deadline = time.monotonic() + 60
    while not wanted <= set(quality_window(here)):
        assert time.monotonic() < deadline, (
            f"other servers' labels never came: {set(quality_window(here))}"
        )
        time.sleep(EVERY)
