"""The server's own alert on monitoring that loses requests (``monitoring_losing``), and the
count of monitoring processes replaced: before, only deploy/'s Prometheus rules
(ModelPilotMonitoringLosing) said that answered requests went unmonitored or unlogged, and
no metric said how often the monitoring process had been replaced."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from modelpilot.monitoring.alert_keeper import AlertKeeper
from modelpilot.monitoring.alert_rules import LOSS_WINDOW_SECONDS, loss_conditions
from modelpilot.monitoring.alerts import AlertBook, AlertRules
from modelpilot.monitoring.loss_history import LossHistory, Lost
from modelpilot.monitoring.siblings import WorkerExchange

EVERY = 2.0  # seconds between evaluations, as the server's default


def _evaluate(
    book: AlertBook, history: LossHistory, now: float, lost: Lost, rules: AlertRules
) -> None:
    """One evaluation of the rule on a server alone that has lost ``lost`` so far."""
    history.record(now, {0: lost})
    book.update(loss_conditions(history.window(now, LOSS_WINDOW_SECONDS), rules), now)


def test_one_replacement_does_not_page_and_a_loss_that_goes_on_does() -> None:
    """A monitoring process killed once under traffic drops the requests of a moment (77 in
    a test) and all is well: no page, as deploy/'s ModelPilotMonitoringLosing. Losses within
    every two minutes for five minutes (a replacement loop, a monitor that cannot keep up, an
    inference log out of reach) fire it; two minutes without a loss resolve it."""
    rules = AlertRules()
    assert rules.loss_for_seconds == 300.0
    book = AlertBook(rules=rules)
    history = LossHistory(LOSS_WINDOW_SECONDS, 0.0, baseline={0: Lost()})
    lost = Lost()
    now = 0.0
    while now < 60:
        _evaluate(book, history, now, lost, rules)
        now += EVERY
    lost = Lost(dropped=77)  # one monitoring process replaced
    while now < 600:
        _evaluate(book, history, now, lost, rules)
        assert not book.active, now
        if now < 60 + LOSS_WINDOW_SECONDS:
            assert ("monitoring_losing", "") in book.pending, now  # held, waiting to fire
            (waiting,) = book.state().waiting(rules)
            assert waiting["fires_at"] == waiting["since"] + 300
        else:
            assert not book.pending, now  # two minutes without a loss: the wait is over
        now += EVERY
    assert not book.history
    # Then a replacement loop: the process dies at every start, and each wait (up to 30 s)
    # drops what comes meanwhile, 1,000 requests at a time.
    started = now
    fired_at = None
    while now < started + 400:
        if (now - started) % 30 == 0:
            lost = Lost(dropped=lost.dropped + 1000, unlogged=lost.unlogged + 10)
        _evaluate(book, history, now, lost, rules)
        if book.active and fired_at is None:
            fired_at = now
        now += EVERY
    assert fired_at is not None and 300 <= fired_at - started <= 300 + EVERY
    (alert,) = book.history
    assert (alert.rule, alert.model, alert.severity) == ("monitoring_losing", "", "warning")
    assert "answered requests lost to monitoring in the last 120 s" in alert.message
    assert "left unmonitored (modelpilot_monitor_dropped_total)" in alert.message
    assert "never written to the inference log" in alert.message
    assert 0 < alert.value < 3000  # a minute: 4 losses of 1,010 in two minutes at most
    # The losses stop: resolved once two minutes went by without one.
    stopped = now
    while book.active:
        _evaluate(book, history, now, lost, rules)
        now += EVERY
    resolved = book.history[-1]
    assert resolved.resolved_at is not None
    assert LOSS_WINDOW_SECONDS - 30 <= resolved.resolved_at - stopped <= LOSS_WINDOW_SECONDS
    assert resolved.message == "no requests lost to monitoring in the last 120 s"


def test_a_history_shorter_than_the_window_judges_nothing_unless_it_lost() -> None:
    """A worker 0 started in place of one that died finds its siblings' counters at what they
    lost before: that is no loss; and its first two minutes without one resolve nothing (a
    firing alert it carried on holds), while a loss it sees holds at once."""
    history = LossHistory(LOSS_WINDOW_SECONDS, 0.0, workers=True)
    history.record(0.0, {0: Lost(), 1: Lost(dropped=500)})  # what worker 1 lost before
    window = history.window(10.0, LOSS_WINDOW_SECONDS)
    (condition,) = loss_conditions(window, AlertRules())
    assert not condition.holds and not condition.judged
    assert "too few to judge" in condition.message
    history.record(12.0, {0: Lost(), 1: Lost(dropped=540)})
    (condition,) = loss_conditions(history.window(12.0, LOSS_WINDOW_SECONDS), AlertRules())
    assert condition.holds and condition.judged
    assert "40 answered requests lost" in condition.message
    assert "by worker: 1 40" in condition.message
    # A worker's figures read in the instant of its death, then its successor's carrying
    # them on: never counted twice.
    history.record(14.0, {0: Lost()})
    history.record(16.0, {0: Lost(), 1: Lost(dropped=530)})
    history.record(18.0, {0: Lost(), 1: Lost(dropped=540)})
    assert history.window(18.0, LOSS_WINDOW_SECONDS).lost == Lost(dropped=40)


@pytest.fixture
def live_pids() -> Iterator[list[int]]:
    """Pids of two live processes, standing for two workers of ``serve --workers``."""
    processes = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(2)
    ]
    yield [p.pid for p in processes]
    for process in processes:
        process.kill()
        process.wait()


def test_worker_0_judges_every_workers_losses_from_their_snapshots(
    tmp_path: Path, live_pids: list[int]
) -> None:
    """With ``--workers``, worker 0 decides on the alerts: the other workers' counters reach
    it in their snapshots (their scrape-time metrics, carried on by a worker started in place
    of one that died), and a loss in worker 1 fires the alert there, counted once."""
    keeper = AlertKeeper(
        None, WorkerExchange(tmp_path, 0, CollectorRegistry()), AlertRules(loss_for_seconds=0)
    )
    local = CollectorRegistry()
    dropped = Counter("modelpilot_monitor_dropped", "Dropped.", registry=local)
    worker_1 = WorkerExchange(tmp_path, 1, local, pid=live_pids[0])
    worker_1.publish()
    now = time.time()
    keeper.update(keeper.loss_conditions(now, 0, 0), now)
    assert not keeper.state().active
    dropped.inc(40)
    worker_1.publish()
    keeper.update(keeper.loss_conditions(now + 2, 0, 0), now + 2)
    (alert,) = keeper.state().active
    assert alert.rule == "monitoring_losing"
    assert alert.message.startswith("40 answered requests lost to monitoring")
    assert "by worker: 1 40" in alert.message
    # Worker 1 dies; its successor carries its counters on: nothing new is lost.
    worker_1.retire()
    successor = WorkerExchange(tmp_path, 1, CollectorRegistry(), pid=live_pids[1])
    successor.inherit()
    successor.publish()
    keeper.update(keeper.loss_conditions(now + 4, 3, 0), now + 4)
    (alert,) = keeper.state().active
    assert alert.message.startswith("43 answered requests lost to monitoring")
    assert "by worker: 0 3, 1 40" in alert.message
    keeper.close()
