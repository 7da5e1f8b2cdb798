"""The inference log's database out of reach for a while: the monitoring process says so in
one line a minute (no traceback), in the server's log format, answers label lookups without
naming the database, and says when the log works again (with what went unlogged)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap import LocalTap, TapFailed
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.registry.database import companion_engine
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.database_proxy import DatabaseProxy
from tests.monitoring.test_tap_process import batches

SERVER_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\d+) (INFO|WARNING|ERROR) ")
"""The start of every line of the server's log (``server.logs.configure_logging``)."""


def test_failed_writes_are_said_in_one_line_and_their_end_with_what_was_lost(
    labelled_iris: Registry, proxy: DatabaseProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failed write came with ~60 lines of SQLAlchemy's and psycopg's traceback, and
    nothing said when the log took writes again (after a disk full too)."""
    url = make_url(proxy.url).set(drivername="postgresql+psycopg")
    log = InferenceLog(companion_engine(url, "inference-log"))
    tap = LocalTap(labelled_iris, MonitorConfig(), log)
    caplog.set_level(logging.INFO, logger="modelpilot.monitoring.tap")
    try:
        proxy.down()
        tap.take(batches(labelled_iris, 0, 5))
        tap.take(batches(labelled_iris, 5, 5))
        said = [r for r in caplog.records if r.name == "modelpilot.monitoring.tap"]
        [failed] = said
        assert failed.levelno == logging.ERROR and failed.exc_info is None
        assert "writing 5 requests to the inference log failed" in failed.getMessage()
        assert "Connection refused" in failed.getMessage()
        assert "\n" not in failed.getMessage() and "sqlalche.me" not in failed.getMessage()

        proxy.up()
        tap.take(batches(labelled_iris, 10, 5))
        [back] = [r for r in caplog.records if r.name == "modelpilot.monitoring.tap"][1:]
        assert back.levelno == logging.INFO
        line = back.getMessage()
        assert "writing to the inference log works again" in line and "(2 writes failed)" in line
        assert "15 requests written" in line and "0 were kept waiting too long" in line
        assert log.count("iris") == 15  # nothing lost: the two rounds that waited, written
        tap.take(batches(labelled_iris, 15, 5))
        said = [r for r in caplog.records if r.name == "modelpilot.monitoring.tap"]
        assert len(said) == 2  # the end said once
    finally:
        tap.close()


@pytest.fixture
def server_logging() -> Iterator[None]:
    """The root logger as ``modelpilot serve`` sets it up, for one test."""
    from modelpilot.server.logs import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("info")
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_monitoring_process_says_an_outage_and_its_end_as_the_server_logs(
    proxy: DatabaseProxy,
    tmp_path: Path,
    iris_model_path: Path,
    iris_csv: Path,
    server_logging: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Its lines lacked the time and pid every other line has; a label post in the outage
    answered 503 with the driver's error, the database's host and port in it."""
    registry = Registry.open(proxy.url, tmp_path / "artifacts")
    register_model(registry, "iris", iris_model_path, reference=iris_csv)
    tap = TapProcess(TapSpec(registry.address(), MonitorConfig()))
    try:
        assert tap.lookup("iris", ["r1"]) == {}  # started, the log opened
        proxy.down()
        for _ in range(3):
            with pytest.raises(TapFailed) as failed:
                tap.lookup("iris", ["r1"])
            assert "does not answer for now" in failed.value.message
            for secret in ("127.0.0.1", str(proxy.port), "psycopg", "sqlalche.me"):
                assert secret not in failed.value.message
        proxy.up()
        assert tap.lookup("iris", ["r1"]) == {}
        child = tap.pid
    finally:
        tap.close()
        registry.close()
    lines = [line for line in capfd.readouterr().err.splitlines() if "monitoring process" in line]
    assert len(lines) == 2, lines  # the failure once, no traceback; and its end
    assert "lookup failed" in lines[0] and "Connection refused" in lines[0]
    assert "answers questions again" in lines[1] and "(3 failed)" in lines[1]
    for line in lines:
        match = SERVER_LINE.match(line)
        assert match is not None, line
        assert int(match.group(1)) == child


def test_rounds_that_cannot_be_watched_while_the_registry_is_down_are_said_once(
    proxy: DatabaseProxy,
    tmp_path: Path,
    iris_model_path: Path,
    iris_csv: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A version first answered during the outage needs the registry for its reference
    profile: every round (4 a second) logged "monitoring iris:1 failed" with ~100 lines."""
    registry = Registry.open(proxy.url, tmp_path / "artifacts")
    register_model(registry, "iris", iris_model_path, reference=iris_csv)
    tap = LocalTap(registry, MonitorConfig())
    rounds = [batches(registry, first, 5) for first in range(0, 50, 5)]
    try:
        proxy.down()
        for merged in rounds:
            tap.take(merged)
        assert tap.failures == 10
        said = [r for r in caplog.records if r.name == "modelpilot.monitoring.tap"]
        assert len(said) == 1 and said[0].exc_info is None
        assert "monitoring iris:1 failed" in said[0].getMessage()
    finally:
        tap.close()
        registry.close()


def test_a_monitoring_process_that_cannot_start_says_why_in_one_line(
    proxy: DatabaseProxy,
    tmp_path: Path,
    iris_model_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Started while the database was down, it died with ~100 lines of traceback at every
    try (its server starts another, waiting longer each time)."""
    registry = Registry.open(proxy.url, tmp_path / "artifacts")
    register_model(registry, "iris", iris_model_path)
    registry.close()
    proxy.down()
    tap = TapProcess(TapSpec(registry.address(), MonitorConfig()))
    try:
        tap._process.join(120)  # it ends at once: nothing to serve without its database
        assert tap._process.exitcode == 1
    finally:
        tap.close()
    err = capfd.readouterr().err
    said = [line for line in err.splitlines() if "monitoring process" in line]
    assert len(said) == 1 and "cannot start" in said[0] and "Connection refused" in said[0]
    # No traceback of the child's (one passes through multiprocessing's process bootstrap;
    # a stray "--- Logging error ---" of this process's may be on this stderr too).
    assert "multiprocessing/process.py" not in err
