"""Stopping the monitor keeps to the shutdown's budget with the alert book's last save in it:
a book whose PostgreSQL is silent is left as last saved, and said to be, rather than waited
for past the budget; one whose database answers is saved and let go of, as before."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from modelpilot.monitoring import alert_keeper
from modelpilot.monitoring import monitor as monitor_module
from modelpilot.monitoring.alert_book_store import book_store, encode
from modelpilot.monitoring.alerts import AlertState
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.tap import LocalTap
from modelpilot.registry import silent_postgres
from modelpilot.registry.store import Registry
from tests.database_proxy import DatabaseProxy

SERVER = "stop-budget"
"""The server whose alert book these tests keep."""


def _monitor(registry: Registry) -> Monitor:
    """A monitor of ``registry`` that keeps its alert book there (and has saved it once:
    it takes over a book kept before), without an inference log."""
    kept = book_store(registry, SERVER)
    assert kept is not None
    kept.save(encode(AlertState()))
    kept.close()
    store = book_store(registry, SERVER)
    assert store is not None
    monitor = Monitor(registry, tap=LocalTap(registry, MonitorConfig()), alert_store=store)
    monitor.flush()  # it keeps the book from now on (saved, with its lease)
    return monitor


def test_a_silent_alert_book_database_does_not_hold_the_stop_past_its_budget(
    proxy: DatabaseProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tester's server, its PostgreSQL silent at SIGTERM: after monitoring had used its
    10 s, the alert book's last save waited 11 s more for the database, in no budget, and
    the server stopped 24 s after the signal, past what the README has Kubernetes wait."""
    monkeypatch.setattr(monitor_module, "STOP_SECONDS", 1.0)
    monkeypatch.setattr(monitor_module, "WEBHOOK_CLOSE_SECONDS", 1.0)
    registry = Registry.open(proxy.url, tmp_path / "artifacts")
    try:
        monitor = _monitor(registry)
        proxy.pause()
        with caplog.at_level(logging.ERROR, logger="modelpilot.monitoring.monitor"):
            asked = time.monotonic()
            monitor.stop()
            took = time.monotonic() - asked
    finally:
        proxy.resume()
        registry.close()
    # Its budget is 2 s here: well short of one wait for a silent database.
    assert took < silent_postgres.ANSWER_SECONDS - 2, took
    (said,) = [r.getMessage() for r in caplog.records if "alert book's last save" in r.getMessage()]
    assert "not done in time" in said and f"server {SERVER!r}" in said, said


def test_an_alert_book_whose_database_answers_is_let_go_of_at_the_stop(
    postgres_location: str, tmp_path: Path
) -> None:
    registry = Registry.open(postgres_location, tmp_path / "artifacts")
    try:
        monitor = _monitor(registry)
        monitor.stop()
        store = book_store(registry, SERVER)
        assert store is not None
        lease = store.lease()
        store.close()
    finally:
        registry.close()
    assert lease is not None and lease.released and lease.holder == monitor.keeper.holder


def test_the_last_evaluation_leaves_the_book_to_the_alerts_close(
    proxy: DatabaseProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A book saved by the stop's last evaluation (changed, or its lease due for renewal)
    waited 10 s for a silent database there, in the time the monitoring process has to
    write the inference log, and again in the alerts' close: saved once, at the close."""
    monkeypatch.setattr(monitor_module, "STOP_SECONDS", 3.0)
    monkeypatch.setattr(monitor_module, "WEBHOOK_CLOSE_SECONDS", 1.0)
    monkeypatch.setattr(alert_keeper, "RENEW_SECONDS", 0.0)  # every evaluation saves it
    registry = Registry.open(proxy.url, tmp_path / "artifacts")
    try:
        monitor = _monitor(registry)
        proxy.pause()
        with caplog.at_level(logging.ERROR, logger="modelpilot.monitoring.monitor"):
            monitor.stop()
    finally:
        proxy.resume()
        registry.close()
    said = [r.getMessage() for r in caplog.records if r.name == "modelpilot.monitoring.monitor"]
    assert not [line for line in said if "last evaluation" in line], said
    assert [line for line in said if "alert book's last save" in line], said
