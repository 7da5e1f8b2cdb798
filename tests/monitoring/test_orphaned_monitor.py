"""A monitoring process whose server was killed: it writes what it was handed and exits with
one line, not a traceback."""

from __future__ import annotations

import pickle
import time

import pytest

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.registry.store import Registry
from tests.monitoring.test_tap_process import batches


def test_a_server_killed_while_its_question_is_answered_leaves_one_line(
    labelled_iris: Registry, capfd: pytest.CaptureFixture[str]
) -> None:
    """The child answering a question of a server that had just been SIGKILLed died of a
    BrokenPipeError traceback (exit code 1), which read like a second failure."""
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))  # its stderr: capfd's
    tap.take(batches(labelled_iris, 0, 200))
    rounds = tap._flush_pending("states", None)
    # The server asks, and is killed before it reads the answer: its ends close.
    tap._control.send_bytes(pickle.dumps(("states", rounds, (time.time(),))))
    tap._control.close()
    tap._data.close()
    tap._process.join(30)
    assert tap._process.exitcode == 0
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert err.count("its server process is gone") == 1, err
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    try:
        assert log.count("iris") == 200
    finally:
        log.close()
