"""A PostgreSQL host that never answers fails a connection in bounded time, as an outage."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from modelpilot.registry import database
from modelpilot.registry.database import postgres_engine
from modelpilot.registry.outage import is_outage


@pytest.fixture
def silent_host() -> Iterator[int]:
    """A port whose kernel completes the TCP handshake and whose server then says nothing, as
    a database host behind a firewall that drops packets, or a hung one, looks to a client."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted, never answered
        yield listener.getsockname()[1]


def test_a_connection_to_a_host_that_never_answers_fails_within_the_timeout(
    silent_host: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq waits for ever by default: every request that needed the registry hung."""
    pytest.importorskip("psycopg")
    monkeypatch.setattr(database, "CONNECT_TIMEOUT_SECONDS", 2)  # libpq's least
    engine = postgres_engine(f"postgresql://nobody@127.0.0.1:{silent_host}/test")
    failed: list[BaseException] = []

    def connect() -> None:
        try:
            engine.connect().close()
        except BaseException as exc:  # kept for the assertion
            failed.append(exc)

    attempt = threading.Thread(target=connect, daemon=True)
    attempt.start()
    attempt.join(60)  # not a speed goal: without a timeout it never returns
    assert not attempt.is_alive(), "the connection attempt still waits"
    assert failed and isinstance(failed[0], OperationalError), failed
    assert "timeout" in str(failed[0]).lower()
    assert is_outage(failed[0])  # answered 503, logged once a minute
    engine.dispose()


def test_a_timeout_in_the_url_is_the_one_kept() -> None:
    url = make_url("postgresql+psycopg://h/db?connect_timeout=30")
    assert database._connect_args(url) == {}
    assert database._connect_args(make_url("postgresql+psycopg://h/db")) == {
        "connect_timeout": database.CONNECT_TIMEOUT_SECONDS
    }
