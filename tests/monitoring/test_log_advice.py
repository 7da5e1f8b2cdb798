"""What the inference log's database needs (autovacuum, in PostgreSQL) is said at start, by the
server's own process, before it says it serves; and not again by its monitoring process."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.registry.store import Registry
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings


def _autovacuum(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
    assert row is not None
    return str(row[0])


async def test_autovacuum_off_is_said_by_the_server_before_it_serves(
    postgres_location: str,
    tmp_path: Path,
    iris_model_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Said by the monitoring process as it opened the log, it came seconds after the
    server said it served (after the first requests, on a loaded machine), on a fresh
    database, where the log's tables did not exist yet."""
    if _autovacuum(postgres_location) != "off":
        pytest.skip("this PostgreSQL runs autovacuum: there is nothing to say")
    registry = Registry.open(postgres_location, tmp_path / "artifacts")
    register_model(registry, "iris", iris_model_path)
    engine = InferenceEngine(registry, make_settings(registry))
    await engine.start()
    monitoring = ProcessMonitoring.for_engine(engine)
    try:
        said = [r for r in caplog.records if "autovacuum is off" in r.getMessage()]
        assert len(said) == 1 and said[0].levelno == logging.WARNING  # before any request
        assert monitoring.monitor is not None
        assert monitoring.monitor.tap.lookup("iris", ["r1"]) == {}  # the child opened the log
    finally:
        monitoring.stop()
        await engine.stop()
        registry.close()
    # Not said again by the child. (The warning's own words: a stray "--- Logging error ---"
    # traceback printed to this stderr names this test, whose name holds "autovacuum".)
    assert "PostgreSQL's autovacuum is off" not in capfd.readouterr().err
