"""Two live servers of one name (``MODELPILOT_SERVER_NAME``) keep one alert book: the one that
started last keeps it, the other stops overwriting it and says so (an error once it has run on
beside the other for ``SHARED_NAME_SECONDS``); a server that starts says so when the book it
takes over was kept until moments ago by a server that did not let go of it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelpilot.monitoring import alert_keeper
from modelpilot.monitoring.alert_book_store import BookFile, BookStore, book_store
from modelpilot.monitoring.alert_keeper import AlertKeeper
from modelpilot.monitoring.alerts import AlertRules, Condition
from modelpilot.registry.store import Registry

RULES = AlertRules(keep_firing_seconds=60.0)


def condition(rule: str, model: str = "") -> Condition:
    return Condition(rule, model, True, "critical", f"{rule} holds", 0.5)


def keeper(store: BookStore) -> AlertKeeper:
    """A server named ``pg-one`` that keeps its book in ``store``."""
    return AlertKeeper(None, None, RULES, store=store, server="pg-one")


@pytest.fixture(params=["file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BookStore]:
    """Where both servers keep the book of ``pg-one``: a registry directory's file, or a
    PostgreSQL registry's table row."""
    if request.param == "file":
        yield BookFile(tmp_path / "alert-books", "pg-one")
        return
    location = request.getfixturevalue("postgres_location")
    registry = Registry.open(location, tmp_path / "artifacts")
    found = book_store(registry, "pg-one")
    assert found is not None
    try:
        yield found
    finally:
        found.close()  # the connections of reads after the servers' last close
        registry.close()


def kept(store: BookStore) -> list[str]:
    """The rules of the alerts firing in the book as saved."""
    state = store.load()
    assert state is not None
    return sorted(alert.rule for alert in state.active)


def test_two_live_servers_of_one_name_do_not_overwrite_each_others_alerts(
    store: BookStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The tester's Deployment scaled to two replicas: the second server took over the live
    book of the first without a word, and each then overwrote the other's alerts in it."""
    now = time.time()
    first = keeper(store)
    first.update([condition("data_drift", "flaky:1")], now=now)

    second = keeper(store)  # starts while the first runs: takes its book over
    assert "was kept by" in caplog.text and "which did not let go of it" in caplog.text
    assert "another server named 'pg-one'" in caplog.text
    second.update([condition("data_drift", "flaky:1"), condition("error_rate")], now=now + 2)
    assert kept(store) == ["data_drift", "error_rate"]

    caplog.clear()
    first.update([condition("data_drift", "flaky:1"), condition("latency")], now=now + 4)
    assert kept(store) == ["data_drift", "error_rate"]  # the second's, not overwritten
    assert first.taken is not None and first.taken.holder == second.holder
    (said,) = [r for r in caplog.records if r.name == alert_keeper.__name__]
    assert said.levelno == logging.WARNING and "this one keeps it no longer" in said.message
    assert str(second.holder) in said.message

    # Running on beside the other: two servers share the name, and it says so as an error.
    caplog.clear()
    first.update([condition("latency")], now=time.time() + alert_keeper.SHARED_NAME_SECONDS)
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "two servers are named 'pg-one'" in error.message

    first.close()  # does not let go of a book it does not keep
    assert kept(store) == ["data_drift", "error_rate"]
    second.close()
    lease = store.lease()
    assert lease is not None and lease.holder == second.holder and lease.released


def test_a_server_stopped_before_the_next_starts_hands_its_book_over_without_a_word(
    store: BookStore, caplog: pytest.LogCaptureFixture
) -> None:
    first = keeper(store)
    first.update([condition("error_rate")], now=time.time())
    first.close()
    second = keeper(store)
    second.update([condition("error_rate"), condition("latency")], now=time.time())
    assert kept(store) == ["error_rate", "latency"] and second.taken is None
    assert "let go of it" not in caplog.text and "keeps it no longer" not in caplog.text
    second.close()


def test_the_book_of_a_server_killed_long_ago_is_taken_over_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = BookFile(tmp_path / "alert-books", "pg-one")
    first = keeper(store)
    first.update([condition("error_rate")], now=time.time())  # then killed: never closed
    book = json.loads(store.path.read_text())
    assert book["released"] is False and book["holder"]["token"] == first.holder.token
    book["saved_at"] -= alert_keeper.LEASE_SECONDS
    store.path.write_text(json.dumps(book))
    second = keeper(store)
    assert [a.rule for a in second.state().active] == ["error_rate"]
    assert "let go of it" not in caplog.text


def test_a_server_that_keeps_its_book_renews_its_lease(store: BookStore) -> None:
    """Saved only when it changes, a book held by a running server looked like the book of
    one that stopped long ago; renewed, it shows the server runs."""
    server = keeper(store)
    server.update([condition("error_rate")], now=time.time())
    lease = store.lease()
    assert lease is not None and not lease.released
    time.sleep(0.01)
    server.update([condition("error_rate")], now=time.time())  # unchanged: not saved
    assert store.lease() == lease
    server.update([condition("error_rate")], now=time.time() + alert_keeper.RENEW_SECONDS)
    renewed = store.lease()
    assert renewed is not None and renewed.saved_at > lease.saved_at
    assert renewed.holder == lease.holder and not renewed.released
    server.close()


def test_a_book_damaged_since_it_was_saved_is_saved_over(tmp_path: Path) -> None:
    """Asking who saved it last must not keep a server from saving a book it cannot read."""
    store = BookFile(tmp_path / "alert-books", "pg-one")
    server = keeper(store)
    server.update([condition("error_rate")], now=time.time())
    store.path.write_text("{not json")
    server.update([condition("error_rate"), condition("latency")], now=time.time())
    assert kept(store) == ["error_rate", "latency"] and server.taken is None
    server.close()
