"""The worker supervisor: workers that fail at start-up stop it; others are started again."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from modelpilot.config import Settings
from modelpilot.errors import ModelPilotError
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.server.supervisor import Supervisor
from tests.conftest import free_port

pytestmark = pytest.mark.slow

MISSING = "no model named 'fraud' in the registry"


@pytest.fixture
def settings(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Workers on a free loopback port, over a registry without the model they serve."""
    # Supervisor.run sets it for its workers; monkeypatch puts it back after the test.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    return Settings(
        registry=registry.location, host="127.0.0.1", http_port=free_port(), grpc_port=0
    )


def test_a_worker_failing_at_start_up_stops_the_supervisor(settings: Settings) -> None:
    """It was started again forever, with a traceback each time."""
    supervisor = Supervisor(settings, [ModelRef("fraud")], 2, give_up_after=2)
    started = time.monotonic()
    with pytest.raises(ModelPilotError) as info:
        supervisor.run()
    assert str(info.value).startswith(f"the workers cannot start: {MISSING} (worker ")
    assert "died 2 times in a row, each time within 30 s of starting)" in str(info.value)
    assert time.monotonic() - started < 60
    assert not [p for p in supervisor._processes.values() if p.is_alive()]
    assert not Path(str(supervisor.shared)).exists()


def test_a_worker_that_lived_is_started_again(settings: Settings) -> None:
    """Only deaths soon after starting count towards giving up: here none is that soon."""
    supervisor = Supervisor(settings, [ModelRef("fraud")], 1, give_up_after=1, young_seconds=0)

    returned = threading.Event()

    def stop_after_two_restarts() -> None:
        deadline = time.monotonic() + 60
        while supervisor.restarts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        if not returned.is_set():  # else SIGTERM would reach pytest itself
            os.kill(os.getpid(), signal.SIGTERM)  # to the supervisor's handler, as a user would

    before = signal.getsignal(signal.SIGTERM)
    stopper = threading.Thread(target=stop_after_two_restarts)
    stopper.start()
    try:
        assert supervisor.run() == 0
    finally:
        returned.set()
        stopper.join()
    assert supervisor.restarts >= 2
    assert signal.getsignal(signal.SIGTERM) == before
