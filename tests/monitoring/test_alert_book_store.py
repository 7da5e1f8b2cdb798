"""The alert book kept across a server's restarts (``alert_book_store``): an alert that fired
before a restart is the same alert after it (same id and ``since``, not announced again), and
resolves through the usual path, or once it could not be judged for
``RESTORED_UNJUDGED_SECONDS``."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from modelpilot.monitoring.alert_book_store import (
    BookFile,
    BookStore,
    book_store,
    decode,
    encode,
    server_name,
)
from modelpilot.monitoring.alert_keeper import AlertKeeper
from modelpilot.monitoring.alerts import RESTORED_UNJUDGED_SECONDS, AlertRules, Condition
from modelpilot.registry.store import Registry
from tests.monitoring.webhook_receiver import Receiver

RULES = AlertRules(keep_firing_seconds=60.0)


def errors(holds: bool, judged: bool = True) -> Condition:
    message = "95.0% of 20 requests failed" if holds else "0.0% of 40 requests failed"
    if not judged:
        message = "0 requests in the last 60 s: too few to judge"
    return Condition("error_rate", "", holds and judged, "critical", message, 0.95, judged)


def drift(holds: bool) -> Condition:
    message = "1 of 4 features drifted: x0" if holds else "no drift"
    return Condition("data_drift", "iris:1", holds, "warning", message, 0.25 if holds else 0.0)


def keeper(store: BookStore, receiver: Receiver | None = None, **rules: float) -> AlertKeeper:
    """A server's alert keeper (one alone decides) keeping its book in ``store``."""
    return AlertKeeper(
        receiver.url if receiver else None,
        None,
        AlertRules(**{"keep_firing_seconds": 60.0, **rules}),
        store=store,
        server="test-host:8000",
    )


@pytest.fixture
def store(tmp_path: Path) -> BookFile:
    return BookFile(tmp_path / "alert-books", "test-host:8000")


def test_an_alert_firing_at_a_restart_is_the_same_alert_after_it(
    store: BookFile, receiver: Receiver
) -> None:
    """The tester's concept drift, firing as the server restarted: it came back under a new id
    and ``since``, and the old id was never resolved (F2)."""
    first = keeper(store, receiver)
    first.update([drift(True)], now=1000.0)
    first.close()
    (fired,) = first.state().active

    second = keeper(store, receiver)
    assert second.state().active == (fired,)  # before any evaluation: shown at once
    second.update([drift(True)], now=1100.0)  # still holds: not announced again
    second.update([drift(False)], now=1102.0)
    second.update([drift(False)], now=1162.0)  # the usual wait, then resolved
    second.close()
    told = [(a["id"], a["state"], a["since"]) for a in receiver.alerts]
    assert told == [(fired.id, "firing", 1000.0), (fired.id, "resolved", 1000.0)]
    assert second.book.fired_total == {}  # counters start from zero with a process


def test_a_drift_alert_stays_active_through_the_wait_to_fire_after_a_restart(
    store: BookFile, receiver: Receiver
) -> None:
    """With MODELPILOT_ALERT_FOR_SECONDS=20 the firing alert was absent from /api/alerts and
    modelpilot_alert_active for the 20 s after the restart, then fired again (addendum)."""
    first = keeper(store, receiver, for_seconds=20.0)
    first.update([drift(True)], now=1000.0)
    first.update([drift(True)], now=1020.0)
    first.close()
    (fired,) = first.state().active

    second = keeper(store, receiver, for_seconds=20.0)
    second.update([drift(True)], now=1200.0)
    state = second.state()
    assert state.active == (fired,) and state.pending == {}
    second.close()
    assert [a["state"] for a in receiver.alerts] == ["firing"]


def test_an_error_rate_alert_holds_unjudged_after_a_restart_then_resolves_saying_why(
    store: BookFile, receiver: Receiver
) -> None:
    """The service history is in memory: a firing error-rate alert vanished at a restart, and
    no ``resolved`` was ever sent (F4). It holds while too few requests judge it, as without
    a restart, but no longer than ``RESTORED_UNJUDGED_SECONDS``."""
    first = keeper(store, receiver)
    first.update([errors(True)], now=time.time() - 30)
    first.close()
    (fired,) = first.state().active

    second = keeper(store, receiver)
    restarted = time.time()
    second.update([errors(False, judged=False)], now=restarted + 10)
    second.update([errors(False, judged=False)], now=restarted + RESTORED_UNJUDGED_SECONDS - 5)
    assert [a.id for a in second.state().active] == [fired.id]
    second.update([errors(False, judged=False)], now=restarted + RESTORED_UNJUDGED_SECONDS + 1)
    assert second.state().active == ()
    second.close()
    firing, resolved = receiver.alerts
    assert firing["state"] == "firing"
    assert (resolved["id"], resolved["state"]) == (fired.id, "resolved")
    assert "could not be judged since the server restarted" in resolved["message"]
    assert resolved["message"].startswith("0 requests in the last 60 s")


def test_an_alert_judged_after_a_restart_is_not_resolved_for_want_of_a_verdict(
    store: BookFile, receiver: Receiver
) -> None:
    first = keeper(store, receiver)
    first.update([errors(True)], now=time.time())
    first.close()
    second = keeper(store, receiver)
    restarted = time.time()
    second.update([errors(True)], now=restarted + 5)  # judged: it holds
    second.update([errors(False, judged=False)], now=restarted + RESTORED_UNJUDGED_SECONDS + 5)
    assert len(second.state().active) == 1  # unjudged now, as any firing alert may be
    second.close()
    assert [a["state"] for a in receiver.alerts] == ["firing"]


def test_an_alert_without_a_rule_to_judge_it_after_a_restart_resolves_in_time(
    store: BookFile, receiver: Receiver
) -> None:
    """A version no longer served has no report, so no verdict at all comes for its drift."""
    first = keeper(store, receiver)
    first.update([drift(True)], now=time.time())
    first.close()
    second = keeper(store, receiver)
    second.update([], now=time.time() + RESTORED_UNJUDGED_SECONDS + 1)
    second.close()
    assert [a["state"] for a in receiver.alerts] == ["firing", "resolved"]
    assert len({a["id"] for a in receiver.alerts}) == 1


def test_a_notification_not_delivered_at_shutdown_is_sent_by_the_next_start(
    store: BookFile, receiver: Receiver
) -> None:
    """A ``resolved`` lost at shutdown left the receiver's alert firing for good."""
    first = keeper(store, receiver, keep_firing_seconds=0.0)
    first.update([errors(True)], now=1000.0)
    first.close()
    receiver.status = 503  # down as the incident ends and the server stops
    restarted = keeper(store, receiver, keep_firing_seconds=0.0)
    restarted.update([errors(False)], now=1010.0)
    restarted.close()
    receiver.status = 200
    third = keeper(store, receiver, keep_firing_seconds=0.0)
    third.close()  # delivers what it took over
    assert [a["state"] for a in receiver.alerts] == ["firing", "resolved"]
    assert len({a["id"] for a in receiver.alerts}) == 1


def test_the_book_is_written_only_when_it_changes(store: BookFile) -> None:
    kept = keeper(store)
    kept.update([errors(False)], now=1000.0)
    assert not store.path.exists()  # nothing to keep: nothing written
    kept.update([errors(True)], now=1002.0)
    os.utime(store.path, ns=(0, 0))
    kept.update([errors(True)], now=1004.0)  # the same book
    figures = Condition("error_rate", "", True, "critical", "50.0% of 40 requests failed", 0.5)
    kept.update([figures], now=1006.0)  # only its figures changed
    assert store.path.stat().st_mtime_ns == 0  # not written again
    kept.update([errors(False)], now=1008.0)  # clearing: a change
    assert store.path.stat().st_mtime_ns != 0
    assert decode(store.path.read_text()).active == kept.state().active
    assert not list(store.path.parent.glob("*.tmp"))


def test_an_unreadable_book_starts_afresh_and_says_so(
    store: BookFile, caplog: pytest.LogCaptureFixture
) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    kept = keeper(store)
    assert kept.state().active == ()
    assert "cannot be read" in caplog.text and str(store.path) in caplog.text


def test_a_registry_directory_keeps_a_book_per_server(tmp_path: Path) -> None:
    """Two servers of one registry directory on one machine judge their own traffic."""
    registry = Registry.open(tmp_path / "registry")
    try:
        one = book_store(registry, server_name(8000, "vm"))
        other = book_store(registry, server_name(8010, "vm"))
        assert isinstance(one, BookFile) and isinstance(other, BookFile)
        assert one.path.parent == tmp_path / "registry" / "alert-books"
        keeper(one).update([errors(True)], now=1000.0)
        assert one.load() is not None and other.load() is None
    finally:
        registry.close()


def test_a_postgresql_registry_keeps_a_book_per_server(
    postgres_location: str, tmp_path: Path
) -> None:
    registry = Registry.open(postgres_location, tmp_path / "artifacts")
    try:
        one = book_store(registry, server_name(8000, "pod-a"))
        other = book_store(registry, server_name(8000, "pod-b"))
        assert one is not None and other is not None
        first = keeper(one)
        first.update([drift(True)], now=1000.0)
        first.update([drift(True), errors(True)], now=1002.0)  # saved again: an upsert
        assert other.load() is None
        kept = one.load()
        assert kept is not None and kept.active == first.state().active
        first.close()
        second = keeper(one)
        assert second.state().active == first.state().active
        second.close()
    finally:
        other.close()
        registry.close()


def test_the_book_round_trips_with_waits_and_notifications(store: BookFile) -> None:
    kept = keeper(store, for_seconds=30.0)
    kept.update([errors(True), drift(True)], now=1000.0)  # drift pending
    kept.update([errors(False)], now=1010.0)  # error rate clearing
    state = kept.state()
    back = decode(encode(state))
    assert back.active == state.active and back.history == state.history
    assert back.pending == {("data_drift", "iris:1"): 1000.0}
    assert back.clearing == {("error_rate", ""): 1010.0}


def test_a_drift_alert_keeps_its_drifted_features_through_the_book(store: BookFile) -> None:
    """What a held data drift's report and gauges hold (``Alert.drifted``) comes back after a
    restart; a book written before it was kept reads as none."""
    kept = keeper(store)
    kept.update([dataclasses.replace(drift(True), drifted=("x0",))], now=1000.0)
    text = encode(kept.state())
    (alert,) = decode(text).active
    assert alert.drifted == ("x0",)
    book = json.loads(text)
    del book["active"][0]["drifted"]
    (alert,) = decode(json.dumps(book)).active
    assert alert.drifted == ()
