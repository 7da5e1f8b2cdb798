"""A registry whose PostgreSQL goes silent (not refusing): unavailable after a bounded wait,
then at once while it lasts, said once in the log, and found again once it answers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelpilot.errors import RegistryUnavailable
from modelpilot.registry.database import postgres_engine
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.database_proxy import DatabaseProxy

BOUND_SECONDS = 15.0
"""How soon a query on a silent database must fail: it waits 10 s (``silent_postgres``)."""


def _timed(ask: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """How long ``ask`` took (at most ``BOUND_SECONDS`` waited for), and what it raised."""
    started = time.monotonic()
    pool = ThreadPoolExecutor(1)
    try:
        # A hang fails the test, instead of holding it (the thread ends on ``resume``).
        error = pool.submit(ask).exception(timeout=BOUND_SECONDS)
    finally:
        pool.shutdown(wait=False)
    return time.monotonic() - started, error


def test_a_silent_registry_is_unavailable_in_seconds_not_for_good(
    proxy: DatabaseProxy,
    tmp_path: Path,
    iris_model_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A tester's server held the repository index and a version not loaded for good (45 s,
    when the client gave up) with its database silent: only ``connect_timeout`` was set, and
    a pooled connection waited for the kernel's TCP retries (~15 minutes)."""
    registry = Registry.open(proxy.url, tmp_path / "artifacts")
    try:
        register_model(registry, "iris", iris_model_path)
        registry.resolve("iris")  # the pool holds a connection now
        caplog.set_level(logging.INFO, logger="modelpilot.registry.store")
        caplog.clear()
        proxy.pause()
        try:
            took, error = _timed(lambda: registry.resolve("iris"))
            assert isinstance(error, RegistryUnavailable), error
            assert 5 < took < BOUND_SECONDS
            # The same server is not waited for again right away: 503 at once meanwhile.
            for ask in (registry.list_models, lambda: registry.set_alias("iris", "a", 1)):
                took, error = _timed(ask)
                assert isinstance(error, RegistryUnavailable) and took < 1, (took, error)
            said = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(said) == 1 and said[0].exc_info is None
            assert "did not answer in 10 s" in said[0].getMessage()
            assert "\n" not in said[0].getMessage()
        finally:
            proxy.resume()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert registry.resolve("iris").version == 1
                break
            except RegistryUnavailable:
                assert time.monotonic() < deadline, "the registry never answered again"
                time.sleep(0.2)
        back = [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
        assert len(back) == 1
    finally:
        registry.close()


def test_a_new_connection_to_a_silent_server_fails_once_then_at_once(
    proxy: DatabaseProxy,
) -> None:
    engine = postgres_engine(proxy.url + "&connect_timeout=2")
    try:
        proxy.pause()
        took, error = _timed(lambda: engine.connect().close())
        assert error is not None and "timeout expired" in str(error) and took < 5
        took, error = _timed(lambda: engine.connect().close())
        assert error is not None and took < 1
        assert "did not answer a new connection in time" in str(error)
    finally:
        proxy.resume()
        engine.dispose()


def test_the_link_is_bounded_unless_the_url_says_otherwise(postgres_location: str) -> None:
    """TCP keepalives and ``tcp_user_timeout`` close a connection whose server went away
    without a word, in the kernel; a URL's own values are kept."""
    for url, user_timeout in (
        (postgres_location, "10000"),
        (postgres_location + "&tcp_user_timeout=2500", "2500"),
    ):
        engine = postgres_engine(url)
        try:
            with engine.connect() as conn:
                dbapi = conn.connection.driver_connection
                assert dbapi is not None
                parameters = dbapi.info.get_parameters()
            assert parameters["keepalives"] == "1"
            assert parameters["tcp_user_timeout"] == user_timeout
            assert parameters["connect_timeout"] == "10"
        finally:
            engine.dispose()
