"""A monitoring process signalled while it starts lives on: it ignores SIGINT and SIGTERM
from its start, not from the end of its imports a second or so later.

A signal to the whole process group in that second (systemd's ``KillMode=control-group``,
``timeout``, a terminal's Ctrl-C) killed it: two errors with tracebacks on an ordinary stop,
and a new monitoring process started while the server shut down."""

from __future__ import annotations

import os
import signal
import time

import pytest

from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.registry.store import Registry


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_as_the_child_starts_does_not_kill_it(
    labelled_iris: Registry, signum: signal.Signals
) -> None:
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    try:
        assert tap.pid is not None
        os.kill(tap.pid, signum)  # before its interpreter has imported anything of ours
        assert tap.states(time.time()) == []  # it answers: the signal found it ignoring
        assert tap.restarts == 0
    finally:
        tap.close()


def test_the_servers_own_signal_mask_is_left_as_it_was(labelled_iris: Registry) -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    try:
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    finally:
        tap.close()
