"""The monitor: taps answered requests on the loop; reports, labels and alerts on a thread.

On the event loop the monitor only appends to a queue, one entry per model call
(``predicted``, however many requests the batch held); its ``history`` appends each request's
latency (``request_finished``). What queued up is joined by version into one array per input and
output and handed to the monitor's ``Tap``, which bins it and writes the inference log: by
the loop itself every ``round_seconds`` when the tap is a process of its own (the server's
default, see ``tap_process``), else by the monitor's thread every ``tick_seconds``.
Every ``evaluate_seconds`` the thread closes a service interval, gathers the tap's windows
(and sibling workers'), recomputes every version's report and applies the alert rules.
Labels join the tap's record of predictions and are kept here. Readers (``/metrics``,
``/api/...``, the dashboard) get the last computed reports, never a half-updated one. On
``stop`` everything queued is handed over and written, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modelpilot.monitoring import (
    monitor_evaluation,
    monitor_labels,
    monitor_stop,
    monitor_thread,
)
from modelpilot.monitoring.alert_book_store import BookStore
from modelpilot.monitoring.alert_keeper import AlertKeeper
from modelpilot.monitoring.alerts import AlertRules, AlertState, Condition
from modelpilot.monitoring.feedback import FeedbackResult
from modelpilot.monitoring.history import ServiceHistory, ServicePoint
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_sharers import LogSharers
from modelpilot.monitoring.model_monitor import ModelMonitor, ModelReport, MonitorConfig
from modelpilot.monitoring.monitor_state import MonitorState, totals_of
from modelpilot.monitoring.monitor_stop import STOP_SECONDS
from modelpilot.monitoring.siblings import WorkerExchange
from modelpilot.monitoring.tap import LocalTap, Tap, TapFailed, monitor_of
from modelpilot.monitoring.tap_batches import Call, merge
from modelpilot.monitoring.version_errors import VersionTraffic
from modelpilot.monitoring.webhook import CLOSE_SECONDS as WEBHOOK_CLOSE_SECONDS
from modelpilot.monitoring.webhook import TIMEOUT_SECONDS as WEBHOOK_TIMEOUT_SECONDS
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.repeated_errors import RepeatedErrors
from modelpilot.serving.observers import InferenceObserver

if TYPE_CHECKING:
    from modelpilot.serving.engine import InferenceEngine

logger = logging.getLogger(__name__)


SHIP_SECONDS = 0.25
"""How often the event loop hands answered calls to a tap in another process.

A handover costs much per round: under the benchmark's load the loop spent 0.62-0.66 us of
CPU per request on it every 0.25 s, 1.1-1.2 us every 50 ms
(``modelpilot_monitor_handover_seconds_total``), and the monitoring process 1.5-2.0 us against
2.5 us. It stops the loop for about 2 ms a round at 19,000 requests/s. Little of what
monitoring costs the serving process is the handover's own CPU, and shorter rounds do not
lower it: docs/monitoring-cost.md takes the cost apart."""


SHARERS_SECONDS = 1.0
"""How long ``Monitor.shares_labels`` keeps its answer: the look lists the servers' directory
and tries each file's lock, and every evaluation and every label post whose ids are not found
at once asks. A server that comes or goes is seen this much later at most."""


class Monitor(InferenceObserver):
    """Model, service and alert monitoring for one server process (an ``InferenceObserver``)."""

    def __init__(
        self,
        registry: Registry,
        config: MonitorConfig | None = None,
        alert_rules: AlertRules | None = None,
        log: InferenceLog | None = None,
        sample_rate: float = 1.0,
        webhook_url: str | None = None,
        tick_seconds: float = 0.25,
        evaluate_seconds: float = 2.0,
        round_seconds: float = SHIP_SECONDS,
        join_capacity: int = 100_000,
        exchange: WorkerExchange | None = None,
        max_queue: int = 200_000,
        tap: Tap | None = None,
        call_sample_rate: float = 1.0,
        restore: bool = False,
        restore_refs: Sequence[str] | None = None,
        restoring: bool = False,
        alert_store: BookStore | None = None,
        resume_alerts: bool = True,
        alert_server: str | None = None,
        webhook_timeout: float = WEBHOOK_TIMEOUT_SECONDS,
    ) -> None:
        """``alert_store``: where the alert book is kept across restarts, and
        ``resume_alerts`` whether this process starts from it (``AlertKeeper``);
        ``alert_server``: this server's name in the webhook's notifications;
        ``webhook_timeout``: how long the webhook waits for each answer."""
        self.registry = registry
        self.config = config or MonitorConfig()
        self.rules = alert_rules or AlertRules()
        self.tap: Tap = tap or LocalTap(registry, self.config, log, sample_rate, join_capacity)
        """Where the answered calls go to be binned and logged (``log`` and ``sample_rate``
        configure the default, a ``LocalTap``)."""
        self.tick_seconds = tick_seconds
        self.evaluate_seconds = evaluate_seconds
        self.round_seconds = round_seconds
        """How often the loop hands the calls over (when the tap takes them on the loop)."""
        self.history = ServiceHistory(
            monitor_pid=lambda: self.tap.pid, latency_bound=self.rules.latency_p99_seconds
        )
        """Throughput, latency, errors, and the CPU and memory of the serving and monitoring
        processes over time: an observer of the engine of its own (``watch`` registers both),
        which the monitor's thread closes interval by interval. It counts the requests over
        the latency alert's threshold, which the alert decides by exactly."""
        self.exchange = exchange
        """Sibling workers' snapshots, merged into every report (``serve --workers``)."""
        self.sharers = LogSharers.of(
            registry.address()[0], exchange.directory if exchange else None
        )
        """The other servers of this SQLite registry directory, which share its inference log
        (None with PostgreSQL, where any may: ``shares_labels``)."""
        self._shared_at = (-math.inf, False)
        """When ``shares_labels`` last looked (``time.monotonic``), and what it found."""
        self.labels_read_to = time.time()
        """Until when other servers' labels were read (``catch_up_labels``)."""
        self._inherited = [totals_of(s) for s in exchange.inherit()] if exchange else []
        """The totals of the worker this one replaces, if it died (killed, crashed): they carry
        on in this worker's, so that the model's counters never go back (its windows of recent
        traffic are gone with it; its labels come back from the log, with ``restore``)."""
        self.keeper = AlertKeeper(
            webhook_url,
            exchange,
            self.rules,
            alert_store,
            resume_alerts,
            alert_server,
            webhook_timeout,
        )
        """Who decides on the alerts, and the book every worker answers from."""
        self.alerts = self.keeper.book
        self._peer_points: list[list[ServicePoint]] = []
        """Each sibling worker's service history, as it last published it."""
        self._ended_points: list[list[ServicePoint]] = []
        """The service histories of workers that died, to their last points, as this worker
        and its siblings carry them on (``monitor_evaluation.gather``)."""
        self.started_at = time.time()
        self._failures = 0
        self._dropped = 0
        self._errors = RepeatedErrors(logger)
        if not 0.0 < call_sample_rate <= 1.0:
            raise ValueError(f"call_sample_rate must be in (0, 1], not {call_sample_rate}")
        self.call_sample_rate = call_sample_rate
        """Share of model calls watched, drawn at random (see ``Settings.monitor_sample_rate``);
        ``sample_rate`` is the inference log's share of those."""
        self._sampling = call_sample_rate < 1.0
        self._draw = random.Random().random
        self.unsampled = 0
        """Answered requests left unwatched by ``call_sample_rate``."""
        self.handover_seconds = 0.0
        """CPU time the event loop has spent handing answered calls over to the tap (joining,
        encoding, writing them): monitoring's own cost on the loop, besides the queueing."""
        self.max_queue = max_queue
        """Model calls allowed to wait for the monitor's thread; past that, new ones are
        dropped. (A round on the event loop holds what came in ``round_seconds``.)"""
        self._queue: deque[Call] = deque()
        # Versions seen here or by siblings: the labels posted here, and the reports.
        self._monitors: dict[tuple[str, int], ModelMonitor] = {}
        self._latest: dict[tuple[str, int], ModelReport] = {}
        # Versions given labels since their last report: reported on again when next read
        # (``report_labelled``) or evaluated, not at every label post.
        self._labelled: set[tuple[str, int]] = set()
        # Two locks, never held together: ``_ship_lock`` keeps what goes to the tap in order
        # (a lookup or a window after every call taken before it); ``_lock`` guards the labels
        # and reports, so readers never wait for the tap's work.
        self._ship_lock = threading.Lock()
        self._ships_on_loop = self.tap.takes_on_loop
        self._unattended = True
        """No handover is due on the event loop, so the next call queued must see to the
        queue (``_attend``): always, when the thread hands calls over; once a round, when
        the loop does. While it is False, the loop's timer will hand the calls over."""
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._last_evaluation = 0.0
        self._round_at = 0.0
        """When the thread last began an evaluation round (``monitor_thread``)."""
        self._engine: InferenceEngine | None = None
        """The engine watched (``watch``): its stalled rollouts are alerts too."""
        self._restore = restore
        """Whether the thread first puts the inference log's recent labels back in the
        quality windows (``restore_labels``), and again those of a version that a model's
        requests go to again (``monitor_labels.restore_returned``)."""
        self._labels_unrestored = restore
        """Whether the log's labels are still to put back (``monitor_labels.restore_quietly``)."""
        self._restore_refs = restore_refs
        """The references served: their versions' labels are restored (None: all models')."""
        self._from_log = restoring
        """Whether this server starts from the inference log (in this process or another)."""
        self.restoring = restoring
        """Whether the windows are still being put back from the inference log as the server
        starts: until this process's thread has first evaluated, where it restores; with
        workers, in a sibling of a starting worker 0, until worker 0 has
        (``monitor_thread.restored``). Until then a model may lack the report it is to have
        (``report`` says so)."""
        self._served_before: dict[str, int] = {}
        """The version each model's requests went to at the thread's last look."""
        self._last_tapped: list[MonitorState] = []
        """The tap's states as it last told them (with the totals of its processes that died,
        which ``TapProcess`` carries on): an evaluation it fails reports their totals."""

    @property
    def shares_labels(self) -> bool:
        """Whether other servers may take labels of this one's predictions: those of the same
        PostgreSQL registry (replicas behind a load balancer), or of the same SQLite registry
        directory while one is there (``sharers``), whose labels reach this one's quality
        windows through the shared log (``catch_up_labels``). Looked up again once its answer
        is ``SHARERS_SECONDS`` old."""
        if self.sharers is None:
            return True
        now = time.monotonic()
        looked_at, shared = self._shared_at
        if now - looked_at >= SHARERS_SECONDS:
            shared = bool(self.sharers.others())
            self._shared_at = (now, shared)
        return shared

    @property
    def log_shared(self) -> bool:
        """Whether other processes write the inference log this one reads: sibling workers,
        or other servers of the same registry (``shares_labels``)."""
        return self.exchange is not None or self.shares_labels

    def watch(self, engine: InferenceEngine) -> None:
        """Observe ``engine``: its model calls (this monitor) and its requests (``history``).

        Two observers rather than one that forwards: each is told only the event it
        overrides, so neither costs a request an extra call."""
        engine.add_observer(self)
        engine.add_observer(self.history)
        self._engine = engine

    @property
    def dropped(self) -> int:
        """Answered requests not monitored: the queue was full, or the tap fell behind."""
        return self._dropped + self.tap.dropped

    @property
    def failures(self) -> int:
        """Rounds and batches whose monitoring raised (logged; the rest carries on)."""
        return self._failures + self.tap.failures

    @property
    def unlogged(self) -> int:
        """Requests monitored but never written to the inference log (``Tap.unlogged``)."""
        return self.tap.unlogged

    # -- InferenceObserver (called on the event loop: append and return) -------------------

    def predicted(
        self,
        version: ModelVersion,
        request_ids: Sequence[str],
        rows: Sequence[int],
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        if self._sampling and self._draw() >= self.call_sample_rate:
            self.unsampled += len(request_ids)
            return
        # A plain tuple, the fields of an ``Answered``: one is made for every call, and a
        # named tuple costs several times as much to make.
        self._queue.append((time.time(), version, request_ids, rows, inputs, outputs))
        if self._unattended:
            self._attend(len(request_ids))

    def _attend(self, requests: int) -> None:
        """See that the queue is handed over, and stays bounded (after a call was queued)."""
        if self._ships_on_loop:
            # The loop hands the calls over itself, a round every ``round_seconds``: a thread
            # doing it would stop the loop whenever it took the interpreter lock. Until then
            # calls are only queued. (Called off any loop, as tests do, the monitor's thread
            # or ``flush`` hands them over.)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._wake.set()  # no loop here: the thread hands them over, promptly
            else:
                loop.call_later(self.round_seconds, self._ship_from_loop)
                self._unattended = False
                return
        if len(self._queue) > self.max_queue:
            # Serving comes first: rather than hold on to ever more requests, skip these.
            self._queue.pop()
            self._dropped += requests

    def _ship_from_loop(self) -> None:
        self._unattended = True
        started = time.thread_time()
        try:
            self._ship()
        except Exception:
            self._failures += 1
            logger.exception("handing predictions to monitoring failed; carrying on")
        finally:
            self.handover_seconds += time.thread_time() - started

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=monitor_thread.run, args=(self,), name="modelpilot-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Hand over everything queued, judge it a last time and have the tap write it all
        out, within ``STOP_SECONDS``; the webhook's last deliveries and the alert book's last
        save beside the tap's close, within ``WEBHOOK_CLOSE_SECONDS`` more (once;
        ``monitor_stop.stop``)."""
        if self._stopped:
            return
        self._stopped = True
        monitor_stop.stop(self, time.monotonic() + STOP_SECONDS, WEBHOOK_CLOSE_SECONDS)

    def flush(self) -> None:
        """Hand over everything queued now, have it written to the inference log, and
        recompute the reports (tests, shutdown, API)."""
        self._ship()
        try:
            self.tap.write()
        except TapFailed:
            # The log's last writes are lost with the monitoring process; reports go on.
            self._failures += 1
            logger.exception("writing the inference log failed")
        self._evaluate()

    def refresh(self) -> None:
        """Recompute the reports now, with the sibling workers' latest snapshots: a scrape
        of ``serve --workers`` answered from reports older than a sibling's showed figures
        that the scrape before, answered by that sibling, had had (``/metrics``)."""
        self._evaluate(close_interval=False)

    def _serving(self) -> dict[str, int]:
        """The version each served model's requests go to now (none before it resolved)."""
        if self._engine is None:
            return {}
        return {name: v.version for name, v in self._engine.served.current_versions() if v}

    def _ship(self) -> None:
        """Hand everything queued to the tap, joined into as few batches as can be."""
        with self._ship_lock:
            queue = self._queue
            taken = [queue.popleft() for _ in range(len(queue))]
            if taken:
                self.tap.take(merge(taken))

    def _monitor(self, version: ModelVersion) -> ModelMonitor:
        return monitor_of(self._monitors, self.registry, version, self.config)

    # -- evaluation (``monitor_evaluation``) ---------------------------------------------

    def _evaluate(self, close_interval: bool = True) -> None:
        """Recompute every report and the alerts (``monitor_evaluation.evaluate``)."""
        monitor_evaluation.evaluate(self, close_interval)

    def _report(
        self,
        now: float,
        own: dict[tuple[str, int], MonitorState],
        tapped: list[MonitorState],
        others: list[MonitorState],
        keys: Iterable[tuple[str, int]],
    ) -> None:
        """Report on the versions ``keys`` (``monitor_evaluation.report``); under ``_lock``."""
        monitor_evaluation.report(self, now, own, tapped, others, keys)

    def _gather(self) -> list[MonitorState]:
        """The siblings' states (``monitor_evaluation.gather``)."""
        return monitor_evaluation.gather(self)

    def series(self) -> list[ServicePoint]:
        """Service history of the whole server: this worker's points and its siblings'."""
        return monitor_evaluation.series(self)

    def _conditions(self, now: float) -> list[Condition]:
        """What the alert rules judge now (``monitor_evaluation.conditions``)."""
        return monitor_evaluation.conditions(self, now)

    # -- readers --------------------------------------------------------------------------

    def alert_state(self) -> AlertState:
        """The active alerts, their history and counts, as every worker answers them."""
        self.report_labelled()
        return self.keeper.state()

    def model_monitor(self, model: str, version: int) -> ModelMonitor | None:
        return self._monitors.get((model, version))

    def report_labelled(self) -> None:
        """Report again on the versions given labels since their last report, so that a
        reader sees them at once (the readers here call it; the event loop's readers call
        it first in a thread, as it may take a while)."""
        monitor_labels.report_labelled(self)

    def reports(self) -> list[ModelReport]:
        self.report_labelled()
        # Without the lock: a report is replaced whole, never changed, and the copy is taken
        # at once. Under it, a reader waited for the whole of an evaluation (0.2-0.7 s with
        # 2,000 features) or of a label post's join, for reports that stood meanwhile.
        latest = self._latest.copy()
        return [latest[k] for k in sorted(latest)]

    def traffic(self) -> dict[str, VersionTraffic]:
        """Each version's requests and server errors of late (``NAME:VERSION``), over every
        worker (``monitor_evaluation.traffic``)."""
        return monitor_evaluation.traffic(self)

    def unwatched(self, traffic: Mapping[str, VersionTraffic] | None = None) -> list[ModelReport]:
        """An empty report of each version that answered requests of late but has none, as
        one that failed every request (``monitor_evaluation.unwatched``; ``traffic`` as
        ``traffic`` answers, if the caller has it)."""
        return monitor_evaluation.unwatched(self, traffic)

    def report(
        self, model: str, version: int | None = None, serving: int | None = None
    ) -> ModelReport:
        """``model``'s report: of ``version``; else of ``serving`` (the version its requests
        go to now), NotFound while that has none (another version's, the newest say, would
        show one rolled back from, which no longer answers, as the serving one's); else (no
        version serving) of its newest version that has one."""
        self.report_labelled()
        return monitor_evaluation.report_of(self, model, version, serving)

    def feedback(self, model: str, labels: Mapping[str, Any]) -> FeedbackResult:
        """Join labels (by request id) to predictions of ``model``; returns what matched.

        A label is one value for a one-row request, or a list with one value per row.
        Predictions are looked up among the tap's recent ones, then in the inference log
        (which survives restarts and is shared by worker processes). Every label is checked
        before any is applied, so a bad one rejects the call and changes nothing.

        Only what is on record now joins: a sibling worker's predictions still on their way
        to the shared log are waited for by ``feedback_async``, which waits on the loop.
        """
        return monitor_labels.feedback(self, model, labels)

    async def feedback_async(self, model: str, labels: Mapping[str, Any]) -> FeedbackResult:
        """``feedback``, for the event loop, waiting for sibling workers' predictions.

        With sibling workers, or other servers of the same registry (``log_shared``), a
        request another process answered reaches the shared log only after its round and its
        tap's writes: ids not found at once are looked for again until they could have arrived
        (``sibling_seconds``), so a label posted right after its prediction joins whichever
        worker or replica answered. Ids that match nothing take that long to be reported. The
        waits are the loop's, not an executor thread's: a thread held that long by each such
        call stalled every other label post behind a few.
        """
        return await monitor_labels.feedback_async(self, model, labels)

    def catch_up_labels(self) -> int:
        """Put the labels other servers of the shared log took since the last look in the
        quality windows (every ``evaluate_seconds``, with a PostgreSQL registry): behind a
        load balancer, each server judged quality on the share of labels posted to it, and
        servers of one model disagreed (0.01 on one, 0.99 on another), until a restart read
        them all back. Returns how many rows the labels read label."""
        return monitor_labels.catch_up_labels(self)

    def restore_labels(self, versions: set[tuple[str, int]] | None = None) -> int:
        """Put the labels the inference log holds from the last ``performance_seconds`` back
        in the quality windows, joined to their predictions as when they were posted: a
        server that restarts keeps its accuracy and concept drift, which labels that come
        days late may take long to build up again. Only those of ``versions`` (model,
        version), if given, else of every version served. Returns how many rows came back."""
        return monitor_labels.restore_labels(self, versions)

    @property
    def sibling_seconds(self) -> float:
        """How long after answering a sibling worker's requests may still be on their way to
        the shared inference log: its round, its tap's writes, and a second to spare."""
        return max(self.round_seconds, self.tick_seconds) + self.tap.log_delay + 1.0
