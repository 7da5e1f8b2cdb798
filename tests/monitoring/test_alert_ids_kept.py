"""An alert's id is given at firing, from the server's name, and kept in the alert book: the
same after a restart on another machine (a Kubernetes Deployment's new pod), and different
for two servers of one machine."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modelpilot.monitoring import alerts
from modelpilot.monitoring.alert_book_store import BookFile, decode
from modelpilot.monitoring.alert_keeper import AlertKeeper
from modelpilot.monitoring.alerts import AlertBook, AlertRules, Condition
from tests.monitoring.webhook_receiver import Receiver

RULES = AlertRules(keep_firing_seconds=0.0)


def drift(holds: bool) -> Condition:
    message = "1 of 4 features drifted: x0" if holds else "no drift"
    return Condition("data_drift", "flaky:1", holds, "warning", message, 0.5 if holds else 0.0)


def derived(*named: str) -> str:
    """An id as the server derives one: the first 16 hex digits of the SHA-256 of its parts."""
    return hashlib.sha256("\0".join(named).encode()).hexdigest()[:16]


def keeper(store: BookFile, receiver: Receiver) -> AlertKeeper:
    """A server named ``prod-a`` (MODELPILOT_SERVER_NAME), keeping its book in ``store``."""
    return AlertKeeper(receiver.url, None, RULES, store=store, server="prod-a")


def test_a_named_server_resolves_an_alert_under_its_id_on_a_new_machine(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tester's Deployment: fired on pod ``poda``, taken over (same ``since``) by the
    replacement pod ``podb``, and resolved there under an id derived from ``podb``, which
    the receiver never saw fire: its alert stayed firing for good."""
    store = BookFile(tmp_path / "alert-books", "prod-a")
    monkeypatch.setattr(alerts, "HOST", "poda")
    first = keeper(store, receiver)
    first.update([drift(True)], now=1000.0)
    first.close()

    monkeypatch.setattr(alerts, "HOST", "podb")  # the new pod's machine name
    second = keeper(store, receiver)
    second.update([drift(False)], now=1010.0)
    second.close()
    told = [
        (body["host"], a["id"], a["state"]) for body in receiver.received for a in body["alerts"]
    ]
    fired = told[0][1]
    assert told == [("poda", fired, "firing"), ("podb", fired, "resolved")]
    assert fired == derived("prod-a", "data_drift", "flaky:1", repr(1000.0))  # the server's name
    kept = json.loads(store.path.read_text())["history"]
    assert [a["id"] for a in kept] == [fired, fired]  # kept in the book, not derived again


def test_two_servers_of_one_machine_give_their_alerts_ids_of_their_own() -> None:
    """Derived from the machine's name, two servers of one machine that fired the same rule
    at the same instant sent the same id for two alerts."""
    one = AlertBook(rules=RULES, server="vm:8000")
    other = AlertBook(rules=RULES, server="vm:8010")
    (fired,) = one.update([drift(True)], now=1000.0)
    (also,) = other.update([drift(True)], now=1000.0)
    assert fired.id != also.id
    (resolved,) = one.update([drift(False)], now=1002.0)
    assert resolved.id == fired.id == resolved.to_dict()["id"]


def test_a_book_kept_before_ids_were_kept_reads_with_the_ids_then_sent(tmp_path: Path) -> None:
    """A book an earlier version wrote has no ids: its alerts get the id that version
    derived from the machine's name, so that one resolved after the upgrade closes the
    receiver's alert (on the same machine, as before)."""
    store = BookFile(tmp_path / "alert-books", "vm_8000")
    first = AlertBook(rules=RULES, server="vm:8000")
    first.update([drift(True)], now=1000.0)
    book = {
        "format": 1,
        "active": [
            {k: v for k, v in a.to_dict().items() if k not in ("id", "state")}
            for a in first.state().active
        ],
        "history": [],
        "pending": [],
        "clearing": [],
        "undelivered": [],
    }
    store.path.parent.mkdir()
    store.path.write_text(json.dumps(book))
    (alert,) = decode(store.path.read_text()).active
    assert alert.id == derived(alerts.HOST, "data_drift", "flaky:1", repr(1000.0))
