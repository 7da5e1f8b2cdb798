"""Telling a busy monitoring process from a hung one by the CPU time it uses."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from modelpilot.monitoring.tap_watchdog import ChildWork


@pytest.fixture
def spinning() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield child
    child.kill()
    child.wait()


@pytest.fixture
def sleeping() -> Iterator[subprocess.Popen[bytes]]:
    code = "import time; print('ready', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"  # started up
    yield child
    child.kill()
    child.wait()
    child.stdout.close()


def test_a_working_child_is_never_idle_for_long(spinning: subprocess.Popen[bytes]) -> None:
    work = ChildWork(spinning.pid)
    for _ in range(8):
        time.sleep(0.25)
        assert work.idle_for() < 1.0


def test_a_waiting_child_is_idle_from_when_it_was_first_looked_at(
    sleeping: subprocess.Popen[bytes],
) -> None:
    work = ChildWork(sleeping.pid)
    time.sleep(1.0)
    assert work.idle_for() >= 1.0


def test_a_stopped_child_is_idle_for_ever(spinning: subprocess.Popen[bytes]) -> None:
    work = ChildWork(spinning.pid)
    spinning.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.1)
        assert work.idle_for() == math.inf
    finally:
        spinning.send_signal(signal.SIGCONT)
    time.sleep(0.1)
    assert work.idle_for() < 1.0


def test_a_child_gone_does_no_work(spinning: subprocess.Popen[bytes]) -> None:
    work = ChildWork(spinning.pid)
    spinning.kill()
    spinning.wait()
    time.sleep(0.3)
    assert work.idle_for() >= 0.3
