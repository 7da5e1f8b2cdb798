"""A registry whose PostgreSQL stops answering for a while: unavailable (503, UNAVAILABLE) to
whoever asks, said once a minute in the log with where and why, and once when it is back."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from modelpilot.errors import RegistryError, RegistryUnavailable, Unavailable
from modelpilot.registry.outage import Outage, is_outage
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.database_proxy import DatabaseProxy


def _said(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "modelpilot.registry.store" and r.levelno == level
    ]


def test_a_registry_that_does_not_answer_is_unavailable_and_the_log_says_where(
    proxy: DatabaseProxy,
    tmp_path: Path,
    iris_model_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tester's outage: a lookup of a version not loaded and the repository index
    answered 500 with the driver's error, the database's host and port and SQLAlchemy's
    help link; and the log said it at every alias refresh (2 s), never that it was back."""
    registry = Registry.open(proxy.url, tmp_path / "artifacts")
    try:
        register_model(registry, "iris", iris_model_path)
        caplog.set_level(logging.INFO, logger="modelpilot.registry.store")
        caplog.clear()
        proxy.down()
        for ask in (
            lambda: registry.resolve("iris"),
            registry.list_models,
            lambda: registry.set_alias("iris", "production", 1),
        ):
            with pytest.raises(RegistryUnavailable) as failed:
                ask()
            error = failed.value
            assert isinstance(error, Unavailable) and isinstance(error, RegistryError)
            assert (error.http_status, error.grpc_status) == (503, "UNAVAILABLE")
            assert error.retry_after >= 1
            assert "retry" in error.message
            for secret in ("127.0.0.1", str(proxy.port), "sqlalche.me", "psycopg", "\n"):
                assert secret not in error.message
        [said] = _said(caplog, logging.ERROR)  # three failures, one line (once a minute)
        line = said.getMessage()
        assert registry.location in line and f":{proxy.port}/" in line
        assert "Connection refused" in line and "\n" not in line and "sqlalche.me" not in line
        assert said.exc_info is None  # an outage is no bug: no traceback of ~60 lines

        proxy.up()
        assert registry.resolve("iris").version == 1
        assert registry.list_models()[0].name == "iris"
        [back] = _said(caplog, logging.INFO)  # said once, by the first that worked
        assert "answers again" in back.getMessage() and "(3 reads and writes failed)" in (
            back.getMessage()
        )
    finally:
        registry.close()


def test_a_new_outage_is_said_at_once_however_soon_after_the_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tests.outage")
    outage = Outage(logger)
    caplog.set_level(logging.INFO, logger="tests.outage")
    for _ in range(2):
        for _ in range(3):
            try:
                raise ConnectionRefusedError("connection refused")
            except OSError as exc:
                outage.failed(exc, "it failed: %s", exc)
        ended = outage.over()
        assert ended is not None and ended.failures == 3
        assert outage.over() is None
    assert [r.getMessage() for r in caplog.records] == ["it failed: connection refused"] * 2


def test_a_bug_keeps_its_traceback_the_first_time(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage(logging.getLogger("tests.outage"))
    for _ in range(2):
        try:
            {}["missing"]
        except KeyError as exc:
            assert not is_outage(exc)
            outage.failed(exc, "it failed: %s", exc)
    [said] = caplog.records
    assert said.exc_info is not None and said.exc_info[0] is KeyError


def test_sqlite_errors_that_are_bugs_are_no_outage() -> None:
    """SQLite calls a missing table "operational" too: that one keeps its traceback."""

    def wrapped(message: str) -> OperationalError:
        return OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))

    assert not is_outage(wrapped("no such table: inference_log_batches"))
    assert not is_outage(wrapped('near "SELEC": syntax error'))
    assert is_outage(wrapped("database is locked"))
    assert is_outage(wrapped("database or disk is full"))
