"""A monitoring process busy with a large round is left to finish it, not killed as hung.

A tester's requests of 8,000 rows x 500 features (41 MB, allowed) kept the child binning and
encoding one round for longer than a question may wait (``QUESTION_SECONDS``, 20 s): it was
killed as "stuck", and its replacement, restoring its windows from the log for 47 s, was
killed by the next such request. Here a round of text rows made heavy on purpose (some
seconds of work) stands for it, and the question's wait is cut to a fraction of that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from modelpilot.monitoring import tap_process, tap_restarts
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap import TapBusy, TapFailed
from modelpilot.monitoring.tap_batches import Merged
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.registration import register_model
from tests.conftest import shop_frame

T = TypeVar("T")

HEAVY_ROWS = 200_000
"""Rows of text of one request: some seconds of the child's work (binned and encoded for the
log), far more than the question's wait in these tests."""


@pytest.fixture
def shop(registry: Registry, shop_files: tuple[Path, Path]) -> ModelVersion:
    model, reference = shop_files
    return register_model(registry, "shop", model, reference=reference, target="bought")


@pytest.fixture
def tap(registry: Registry, shop: ModelVersion) -> Iterator[TapProcess]:
    process = TapProcess(TapSpec(registry.address(), MonitorConfig()))
    yield process
    with contextlib.suppress(ProcessLookupError):
        if process.pid is not None:
            os.kill(process.pid, signal.SIGCONT)
    process.close()


def heavy(version: ModelVersion, request_id: str, rows: int = HEAVY_ROWS) -> list[Merged]:
    """One request of ``rows`` rows of the shop model (a text feature among them)."""
    frame = shop_frame(rows, seed=1)
    return [
        Merged(
            version,
            [request_id],
            [time.time()],
            [rows],
            {"input-0": frame.to_numpy(dtype=object)},
            {"predict": np.zeros(rows, dtype=np.int64), "predict_proba": np.full((rows, 2), 0.5)},
        )
    ]


def requests(tap: TapProcess) -> int:
    return sum(state.requests for state in tap.states(time.time()))


def patiently(question: Callable[[], T]) -> tuple[T, int]:
    """``question``'s answer, asked again while the child is busy; and how many times it was
    busy. Every other failure (the child killed) fails the test."""
    busy = 0
    asked = time.monotonic()
    while True:
        try:
            return question(), busy
        except TapFailed as exc:
            assert "busy" in str(exc), exc
            busy += 1
        assert time.monotonic() - asked < 120


def test_a_child_busy_with_a_large_round_is_not_killed(
    tap: TapProcess,
    shop: ModelVersion,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(tap_process, "QUESTION_SECONDS", 0.5)
    monkeypatch.setattr(tap_process, "IDLE_SECONDS", 10.0)  # a loaded machine's niced child
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 0.0)
    assert requests(tap) == 0  # started, and has answered
    child = tap.pid
    tap.take(heavy(shop, "big-1"))
    # Each question fails in its time while the child works; none kills it.
    counted, busy = patiently(lambda: requests(tap))
    assert busy >= 1  # the round took the child longer than a question waits
    assert counted == 1
    assert tap.pid == child and tap.restarts == 0 and tap.dropped == 0
    # The answers it owed the questions given up on are not taken for later ones'.
    tap.take(heavy(shop, "small-1", rows=3))
    found, _ = patiently(lambda: tap.lookup("shop", ["small-1", "nothing"]))
    assert found.keys() == {"small-1"}
    assert patiently(lambda: requests(tap))[0] == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_busy_child_that_is_then_stopped_is_killed_as_hung(
    tap: TapProcess, shop: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy is told from stuck by the work the child does: stopped (SIGSTOP) mid-round, it
    does none, and is killed and replaced as any hung child is."""
    monkeypatch.setattr(tap_process, "QUESTION_SECONDS", 0.5)
    monkeypatch.setattr(tap_process, "IDLE_SECONDS", 4.0)
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 0.0)
    assert requests(tap) == 0
    child = tap.pid
    assert child is not None
    tap.take(heavy(shop, "big-1"))
    with pytest.raises(TapFailed, match="busy"):
        requests(tap)
    os.kill(child, signal.SIGSTOP)
    asked = time.monotonic()
    with pytest.raises(TapFailed, match="did not answer states in time; it is being replaced"):
        while True:  # (busy still, if it worked since it was last looked at)
            with contextlib.suppress(TapBusy):
                requests(tap)
    assert time.monotonic() - asked < 15
    tap._process.join(10)
    assert tap._process.exitcode == -signal.SIGKILL
    tap.take(heavy(shop, "small", rows=10))  # replaced
    assert tap.restarts == 1 and tap.pid != child
