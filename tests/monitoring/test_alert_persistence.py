"""Drift alerts wait to fire and to resolve (MODELPILOT_ALERT_FOR_SECONDS, _KEEP_FIRING_SECONDS),
the error-rate and latency alerts to resolve: one incident is one firing and one resolution,
however its evaluations flicker."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pandas as pd
import pytest

from modelpilot.config import Settings
from modelpilot.monitoring.alert_rules import service_conditions
from modelpilot.monitoring.alerts import AlertBook, AlertRules, Condition
from modelpilot.monitoring.history import ServicePoint
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.process import alert_rules
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import monitored, reference_traffic, send, shifted_traffic
from tests.monitoring.webhook_receiver import Receiver


def drift(holds: bool) -> Condition:
    message = "1 of 4 features drifted: x0" if holds else "no drift"
    return Condition("data_drift", "iris:1", holds, "warning", message, 0.25 if holds else 0.0)


def test_a_flickering_drift_is_one_firing_and_one_resolution(receiver: Receiver) -> None:
    """The tester's steady shift on 200-row windows, seen in 84% of them and judged every 2 s
    for two minutes: the alert fired and resolved ten times, twenty notifications."""
    book = AlertBook(receiver.url)  # the defaults: fires at once, resolves after a minute
    seen = random.Random(5)
    held = [seen.random() < 0.84 for _ in range(60)] + [False] * 40  # 120 s, then over
    changes = []
    for tick, holds in enumerate(held):
        changes += book.update([drift(holds)], now=1000.0 + 2 * tick)
    book.close()
    assert held.count(False) > 45  # it flickered: 5 or more evaluations missed the shift
    assert [a["state"] for a in receiver.alerts] == ["firing", "resolved"]
    assert book.fired_total == {("data_drift", "iris:1", "warning"): 1}
    fired, resolved = changes
    assert fired.since == resolved.since == 1000.0  # at the first evaluation
    stopped = 1000.0 + 2 * (max(t for t, holds in enumerate(held) if holds) + 1)
    assert resolved.resolved_at == stopped + 60.0


def test_a_resolution_says_since_when_the_drift_has_not_held() -> None:
    book = AlertBook(rules=AlertRules(keep_firing_seconds=60.0))
    book.update([drift(True)], now=0.0)
    assert book.update([drift(False)], now=10.0) == []
    waiting = book.active[("data_drift", "iris:1")]
    assert waiting.message == (
        "no drift; has not held since 1970-01-01 00:00:10 UTC, "
        "resolves at 1970-01-01 00:01:10 UTC unless it holds again"
    )
    assert waiting.value == 0.0 and waiting.resolved_at is None  # the figures of now
    assert book.update([drift(False)], now=69.0) == []
    (resolved,) = book.update([drift(False)], now=70.0)
    assert resolved.message == "no drift; has not held since 1970-01-01 00:00:10 UTC"
    assert (resolved.since, resolved.resolved_at) == (0.0, 70.0)


def test_a_drift_that_holds_again_before_it_resolves_is_the_same_alert() -> None:
    book = AlertBook(rules=AlertRules(keep_firing_seconds=60.0))
    book.update([drift(True)], now=0.0)
    book.update([drift(False)], now=10.0)
    assert book.update([drift(True)], now=50.0) == []  # the wait starts over when it stops again
    assert book.active[("data_drift", "iris:1")].message == "1 of 4 features drifted: x0"
    assert book.update([drift(False)], now=52.0) == []
    assert book.update([drift(False)], now=111.0) == []  # 59 s since 52
    (resolved,) = book.update([drift(False)], now=112.0)
    assert resolved.since == 0.0
    assert resolved.message == "no drift; has not held since 1970-01-01 00:00:52 UTC"


def test_a_drift_fires_only_once_it_has_held_for_seconds() -> None:
    book = AlertBook(rules=AlertRules(for_seconds=30.0, keep_firing_seconds=0.0))
    assert book.update([drift(True)], now=0.0) == []
    assert book.update([drift(True)], now=20.0) == []
    assert book.update([drift(False)], now=22.0) == []  # a fluke: the wait starts over
    assert book.update([drift(True)], now=24.0) == []
    assert book.update([drift(True)], now=53.0) == []
    state = book.state()  # pending: neither shown nor counted
    assert state.active == () and state.fired_total == {} and state.history == ()
    assert state.pending == {("data_drift", "iris:1"): 24.0}
    (fired,) = book.update([drift(True)], now=54.0)
    assert fired.since == 54.0 and fired.message == "1 of 4 features drifted: x0"
    assert book.state().pending == {}
    (resolved,) = book.update([drift(False)], now=56.0)
    assert resolved.message == "no drift"  # resolved at once: nothing to say since when


def test_the_drift_rules_wait_to_fire_and_every_sampled_rule_to_resolve() -> None:
    """Concept drift waits as data drift does; the error rate and the latency fire at once but
    resolve only after the wait too; a stalled rollout, a fact, waits for neither."""
    rules = AlertRules(for_seconds=10.0, keep_firing_seconds=10.0)
    book = AlertBook(rules=rules)

    def round_(holds: bool, now: float) -> list[str]:
        conditions = [
            Condition("concept_drift", "iris:1", holds, "critical", "accuracy fell", 1.0),
            Condition("error_rate", "", holds, "critical", "errors", 0.5),
            Condition("latency", "", holds, "warning", "p99", 0.9),
            Condition("rollout_stalled", "iris:2", holds, "critical", "stalled", 1.0),
        ]
        changes = book.update(conditions, now=now)
        return [f"{a.rule} {'resolved' if a.resolved_at else 'fired'}" for a in changes]

    assert round_(True, 0.0) == ["error_rate fired", "latency fired", "rollout_stalled fired"]
    assert round_(True, 10.0) == ["concept_drift fired"]
    assert round_(False, 11.0) == ["rollout_stalled resolved"]
    assert round_(False, 20.0) == []
    assert round_(False, 21.0) == [
        "concept_drift resolved",
        "error_rate resolved",
        "latency resolved",
    ]


def test_one_burst_of_failures_is_one_error_rate_firing_and_one_resolution(
    receiver: Receiver,
) -> None:
    """A tester's burst of 30 failures among steady traffic (some 570 requests a minute): the
    share of a minute's requests that failed crossed 5% back and forth as requests slid in and
    out of the minute, and fired and resolved the alert three times in 40 s, a notification
    each time. (40 failures here: 30 of 570, 5.3%, are no evidence of a rate over 5%, and the
    rule, which holds on evidence, crosses its line back and forth less often.)"""
    book = AlertBook(receiver.url)  # the defaults: a minute's wait to resolve
    at_once = AlertBook(rules=AlertRules(keep_firing_seconds=0.0))
    traffic = np.random.default_rng(3)
    points: list[ServicePoint] = []
    flapped = []
    for tick in range(120):  # four minutes, evaluated every 2 s
        now = 2.0 * tick
        requests, failed = int(traffic.poisson(15)), 0
        if tick == 30:
            requests, failed = requests + 120, 40
        points.append(ServicePoint(now, 2.0, requests, failed, 0.01, 0.01, 0.01, 0.0, 0, failed))
        window = [p for p in points if p.t > now - 60.0]
        conditions = service_conditions(window, AlertRules())
        book.update(conditions, now=now)
        flapped += at_once.update(conditions, now=now)
    book.close()
    assert len([a for a in flapped if a.rule == "error_rate"]) >= 4  # it crossed its line again
    told = [(a["rule"], a["state"]) for a in receiver.alerts]
    assert told == [("error_rate", "firing"), ("error_rate", "resolved")]
    fired, resolved = receiver.alerts
    assert fired["id"] == resolved["id"]
    # At the latest a minute after the burst left the minute's window (at 120 s).
    assert fired["since"] >= 60.0 and resolved["resolved_at"] <= 120.0 + 60.0
    assert "has not held since" in resolved["message"]


def test_a_successor_waits_on_from_where_the_book_it_carries_on_stood() -> None:
    """With ``--workers``, the worker that replaces a dead worker 0 takes its book over: a
    drift pending there fires no sooner, and a firing one that stopped holding resolves on
    time, not a whole wait after the takeover (nor at once)."""
    rules = AlertRules(for_seconds=30.0, keep_firing_seconds=60.0)
    gone = AlertBook(rules=rules)
    shifted = Condition("data_drift", "iris:2", True, "warning", "1 of 4 features drifted", 0.25)
    calm = Condition("data_drift", "iris:2", False, "warning", "no drift", 0.0)
    gone.update([shifted], now=0.0)  # iris:2 pending
    gone.update([drift(True), shifted], now=15.0)  # iris:1 pending too
    gone.update([drift(True), shifted], now=35.0)  # iris:2 fires
    gone.update([drift(True), calm], now=40.0)  # and stops holding
    state = gone.state()
    assert state.pending == {("data_drift", "iris:1"): 15.0}
    assert state.clearing == {("data_drift", "iris:2"): 40.0}

    successor = AlertBook(rules=rules)
    successor.carry_on(state)
    assert successor.update([drift(True), calm], now=44.0) == []  # held since 15: 29 s
    (fired,) = successor.update([drift(True), calm], now=45.0)
    assert (fired.model, fired.since) == ("iris:1", 45.0)
    assert successor.update([drift(True), calm], now=99.0) == []
    (resolved,) = successor.update([drift(True), calm], now=100.0)
    assert (resolved.model, resolved.since, resolved.resolved_at) == ("iris:2", 35.0, 100.0)
    assert successor.fired_total == {
        ("data_drift", "iris:2", "warning"): 1,
        ("data_drift", "iris:1", "warning"): 1,
    }


def test_the_settings_give_the_alert_rules_their_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = alert_rules(Settings())
    assert (defaults.for_seconds, defaults.keep_firing_seconds) == (0.0, 60.0)
    assert defaults == AlertRules()  # the book's own defaults are the server's
    monkeypatch.setenv("MODELPILOT_ALERT_FOR_SECONDS", "120")
    monkeypatch.setenv("MODELPILOT_ALERT_KEEP_FIRING_SECONDS", "0")
    rules = alert_rules(Settings())
    assert (rules.for_seconds, rules.keep_firing_seconds) == (120.0, 0.0)
    monkeypatch.setenv("MODELPILOT_ALERT_FOR_SECONDS", "-1")
    with pytest.raises(ValueError, match="alert_for_seconds"):
        Settings()


def test_the_monitor_judges_drift_by_its_rules(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    """Through the monitor, on real windows: the shift is over, the alert keeps firing."""
    monitor = Monitor(
        labelled_iris, MonitorConfig(window_rows=100), AlertRules(keep_firing_seconds=3600.0)
    )
    version = labelled_iris.get_version("iris", 1)

    def score(rows: np.ndarray, name: str) -> None:
        for i in range(0, len(rows), 10):
            chunk = rows[i : i + 10]
            ids = [f"{name}{i + j}" for j in range(len(chunk))]
            predicted = {"predict": np.zeros(len(chunk), dtype=np.int64)}
            monitor.predicted(version, ids, [1] * len(chunk), {"input-0": chunk}, predicted)

    try:
        score(shifted_traffic(iris_frame, 100, seed=1), "s")
        monitor.flush()
        (fired,) = monitor.alerts.active.values()
        assert fired.rule == "data_drift"
        score(reference_traffic(iris_frame, 200, seed=2), "r")
        monitor.flush()
        report = monitor.report("iris")
        assert report.drift is not None and report.drift.drifted_features == []
        (kept,) = monitor.alert_state().active
        assert kept.since == fired.since and kept.message.startswith("no drift; has not held")
    finally:
        monitor.stop()


async def test_a_served_drift_waits_to_fire_and_to_resolve(
    labelled_iris: Registry, iris_frame: pd.DataFrame
) -> None:
    """End to end from the settings: pending, firing, kept, resolved."""
    async with monitored(
        labelled_iris,
        drift_window_rows=100,
        alert_for_seconds=0.5,
        alert_keep_firing_seconds=1.0,
    ) as served:
        client, monitor = served.client, served.monitor
        await send(client, shifted_traffic(iris_frame, 100, seed=3))
        monitor.flush()
        assert (await client.get("/api/monitoring/iris")).json()["drift"]["drifted_features"]
        alerts = (await client.get("/api/alerts")).json()
        assert alerts["active"] == []
        (pending,) = alerts["pending"]
        assert (pending["rule"], pending["model"], pending["state"]) == (
            "data_drift",
            "iris:1",
            "pending",
        )
        assert pending["fires_at"] == pytest.approx(pending["since"] + 0.5)
        metrics = (await client.get("/metrics")).text
        assert "modelpilot_alert_active{" not in metrics
        assert (
            'modelpilot_alert_pending{model="iris",rule="data_drift",severity="warning",'
            'version="1"} 1.0' in metrics
        )
        await asyncio.sleep(0.6)
        monitor.flush()
        alerts = (await client.get("/api/alerts")).json()
        (fired,) = alerts["active"]
        assert fired["rule"] == "data_drift" and fired["state"] == "firing"
        assert alerts["pending"] == []
        assert "modelpilot_alert_pending{" not in (await client.get("/metrics")).text

        await send(client, reference_traffic(iris_frame, 200, seed=4))
        monitor.flush()
        (kept,) = (await client.get("/api/alerts")).json()["active"]
        assert kept["id"] == fired["id"] and "has not held since" in kept["message"]
        await asyncio.sleep(1.1)
        monitor.flush()
        alerts = (await client.get("/api/alerts")).json()
        assert alerts["active"] == []
        (resolved,) = [a for a in alerts["history"] if a["state"] == "resolved"]
        assert resolved["id"] == fired["id"]
        assert resolved["message"].startswith("no drift; has not held since ")
