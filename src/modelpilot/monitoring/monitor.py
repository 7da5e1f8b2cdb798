"""The monitor: taps answered requests on the loop, does all its work on one thread of its own.

On the event loop the monitor only appends to queues (``predicted``, ``request_finished``).
Its thread, every ``tick_seconds``, takes what queued up, groups it by version, bins it into
each version's ``ModelMonitor`` and writes the sampled part to the inference log; every
``evaluate_seconds`` it closes a service interval, recomputes every version's report and
applies the alert rules. Readers (``/metrics``, ``/api/...``, the dashboard) get the last
computed reports, never a half-updated one. On ``stop`` everything queued is processed and
written, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.errors import BadRequest, NotFound
from modelpilot.monitoring.alerts import AlertBook, AlertRules, Condition
from modelpilot.monitoring.history import ServiceHistory, ServicePoint, merge_points
from modelpilot.monitoring.inference_log import InferenceLog, LogBatch, LogEntry, encode_many
from modelpilot.monitoring.model_monitor import (
    ModelMonitor,
    ModelReport,
    MonitorConfig,
    MonitorState,
)
from modelpilot.monitoring.siblings import WorkerExchange
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.observers import InferenceObserver

logger = logging.getLogger(__name__)

SLICE = 256
"""Answered requests taken in at a time by the monitor thread before it yields."""


@dataclass(frozen=True, slots=True)
class _Answered:
    at: float
    version: ModelVersion
    request_id: str
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    accepted: int
    """Labels (rows) joined to a prediction."""
    unknown: list[str]
    """Request ids with no prediction on record (not logged, or from another model)."""


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
        join_capacity: int = 100_000,
        exchange: WorkerExchange | None = None,
        max_queue: int = 200_000,
    ) -> None:
        self.registry = registry
        self.config = config or MonitorConfig()
        self.rules = alert_rules or AlertRules()
        self.log = log
        self.sample_rate = sample_rate
        self.tick_seconds = tick_seconds
        self.evaluate_seconds = evaluate_seconds
        self.history = ServiceHistory()
        self.exchange = exchange
        """Sibling workers' snapshots, merged into every report (``serve --workers``)."""
        # Every worker computes the same merged alerts; only the first one announces them.
        announce = exchange is None or exchange.index == 0
        self.alerts = AlertBook(webhook_url if announce else None)
        self._peer_points: list[ServicePoint] = []
        self.started_at = time.time()
        self.failures = 0
        """Rounds of work that raised (logged; the thread carries on)."""
        self.dropped = 0
        """Answered requests not monitored because the queue was full (the thread fell behind)."""
        self.max_queue = max_queue
        self._queue: deque[_Answered] = deque()
        self._monitors: dict[tuple[str, int], ModelMonitor] = {}
        self._latest: dict[tuple[str, int], ModelReport] = {}
        # Recent answers by request id, for labels: kept as they came (converted on a join).
        # With every request in the inference log, labels join there and this stays empty.
        self._joins: OrderedDict[str, _Answered] = OrderedDict()
        self._remember = log is None or sample_rate < 1.0
        self._log_pending: list[LogBatch] = []
        self._join_capacity = join_capacity
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._random = random.Random()
        self._last_evaluation = 0.0

    # -- InferenceObserver (called on the event loop: append and return) -------------------

    def request_finished(
        self,
        model: str,
        version: str,
        transport: str,
        status: str,
        seconds: float,
        error: str | None,
    ) -> None:
        self.history.record(seconds, status == "ok")

    def batch_finished(self, model: str, version: str, rows: int, queue_seconds: Any) -> None:
        return None

    def inflight_changed(self, model: str, delta: int) -> None:
        return None

    def predicted(
        self,
        version: ModelVersion,
        request_id: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        if len(self._queue) >= self.max_queue:
            # Serving comes first: rather than hold on to ever more requests, skip this one.
            self.dropped += 1
            return
        self._queue.append(_Answered(time.time(), version, request_id, inputs, outputs))

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="modelpilot-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Process and write everything queued, then stop the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
        self.alerts.close()
        if self.log is not None:
            self.log.close()

    def flush(self) -> None:
        """Take in everything queued now and recompute the reports (tests, shutdown, API)."""
        with self._lock:
            self._drain()
            self._write_log()
            self._evaluate()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.tick_seconds)
            self._wake.clear()
            try:
                # In slices, letting go of the interpreter lock in between: the event loop
                # waits for it whenever this thread holds it, which shows in tail latency.
                more = True
                while more:
                    with self._lock:
                        more = self._drain(SLICE)
                    time.sleep(0)
                self._write_log()
                if time.time() - self._last_evaluation >= self.evaluate_seconds:
                    with self._lock:
                        self._evaluate()
            except Exception:
                self.failures += 1
                logger.exception("monitoring round failed; carrying on")

    # -- the work (on the monitor thread, under the lock) ---------------------------------

    def _drain(self, limit: int | None = None) -> bool:
        """Take in up to ``limit`` queued answers (all by default); True if more are left."""
        taken: list[_Answered] = []
        queue = self._queue
        while queue and (limit is None or len(taken) < limit):
            taken.append(queue.popleft())
        if not taken:
            return False
        by_version: dict[tuple[str, int], list[_Answered]] = {}
        for answered in taken:
            by_version.setdefault(answered.version.key, []).append(answered)
        if self._remember:
            joins = self._joins
            for answered in taken:
                joins[answered.request_id] = answered
            while len(joins) > self._join_capacity:
                joins.popitem(last=False)
        rows: list[LogBatch] = []
        for group in by_version.values():
            self._observe(self._monitor(group[0].version), group)
            if self.log is not None:
                rows.extend(self._sample(group))
        self._log_pending.extend(rows)
        return bool(queue)

    def _write_log(self) -> None:
        """One transaction for what the slices of a round set aside for the log."""
        rows, self._log_pending = self._log_pending, []
        if rows and self.log is not None:
            self.log.append(rows)

    def _monitor(self, version: ModelVersion) -> ModelMonitor:
        monitor = self._monitors.get(version.key)
        if monitor is None:
            profile = None
            if version.has_reference:
                profile = self.registry.reference_profile(version.model, version.version)
            monitor = ModelMonitor(version, profile, self.config)
            self._monitors[version.key] = monitor
        return monitor

    def _observe(self, monitor: ModelMonitor, group: list[_Answered]) -> None:
        rows = None
        signature = monitor.version.signature
        if signature.is_tabular:
            name = signature.inputs[0].name
            parts = [np.asarray(a.inputs[name]) for a in group if name in a.inputs]
            if parts:
                rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
        names = list(group[0].outputs)
        outputs = {}
        for name in names:
            parts = [np.asarray(a.outputs[name]) for a in group if name in a.outputs]
            if len(parts) == len(group):
                outputs[name] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        monitor.observe(len(group), rows, outputs, group[-1].at)

    def _sample(self, group: list[_Answered]) -> list[LogBatch]:
        if self.sample_rate < 1.0:
            group = [a for a in group if self._random.random() < self.sample_rate]
        if not group:
            return []
        version = group[0].version
        return [
            LogBatch(
                version.model,
                version.version,
                [a.request_id for a in group],
                [a.at for a in group],
                encode_many([a.inputs for a in group]),
                encode_many([a.outputs for a in group]),
            )
        ]

    def _evaluate(self) -> None:
        now = time.time()
        self._last_evaluation = now
        self.history.close_interval(now)
        # Each version's state once: published for the siblings and reported on here.
        states = {key: monitor.state(now) for key, monitor in self._monitors.items()}
        peers: dict[tuple[str, int], list[MonitorState]] = {}
        if self.exchange is not None:
            peers = self._exchange(list(states.values()))
        for key in peers:
            if key not in self._monitors:
                self._monitor(self.registry.get_version(*key))
        for key, monitor in self._monitors.items():
            try:
                self._latest[key] = monitor.report(now, peers.get(key, ()), states.get(key))
            except Exception:
                # One version's bad data must not stop the others being watched.
                self.failures += 1
                logger.exception("monitoring report of %s:%d failed", *key)
        self.alerts.update(self._conditions(now), now)

    def _exchange(self, states: list[MonitorState]) -> dict[tuple[str, int], list[MonitorState]]:
        """Publish this worker's state; gather its siblings' by version."""
        assert self.exchange is not None
        self.exchange.publish(states, list(self.history.points))
        by_key: dict[tuple[str, int], list[MonitorState]] = {}
        points: list[ServicePoint] = []
        for peer in self.exchange.peers():
            for state in peer.states:
                by_key.setdefault((state.model, state.version), []).append(state)
            points.extend(peer.points)
        self._peer_points = points
        return by_key

    def series(self) -> list[ServicePoint]:
        """Service history of the whole server: this worker's points and its siblings'."""
        return merge_points(list(self.history.points), self._peer_points, self.evaluate_seconds)

    def _conditions(self, now: float) -> list[Condition]:
        conditions = []
        for report in self._latest.values():
            label = f"{report.model}:{report.version}"
            drift = report.drift
            drifted = drift.drifted_features if drift else []
            conditions.append(
                Condition(
                    "data_drift",
                    label,
                    bool(drifted),
                    "critical" if drift is not None and drift.dataset_drift else "warning",
                    (
                        f"{len(drifted)} of {len(drift.features)} features drifted: "
                        f"{', '.join(drifted)}"
                        if drift is not None and drifted
                        else "no drift"
                    ),
                    drift.drifted_share if drift else 0.0,
                )
            )
            performance = report.performance
            conditions.append(
                Condition(
                    "concept_drift",
                    label,
                    report.concept_drift,
                    "critical",
                    performance.reason if performance else "",
                    float(len(performance.degraded)) if performance else 0.0,
                )
            )
        horizon = now - self.rules.window_seconds
        window = [p for p in self.series() if p.t > horizon]
        requests = sum(p.requests for p in window)
        errors = sum(p.errors for p in window)
        rate = errors / requests if requests else 0.0
        conditions.append(
            Condition(
                "error_rate",
                "",
                requests >= self.rules.min_requests and rate > self.rules.error_rate,
                "critical",
                f"{rate:.1%} of {requests} requests failed in the last "
                f"{self.rules.window_seconds:.0f} s (threshold {self.rules.error_rate:.1%})",
                rate,
            )
        )
        # The request-weighted mean of each interval's p99 stands for the window's p99.
        p99 = sum(p.p99 * p.requests for p in window) / requests if requests else 0.0
        conditions.append(
            Condition(
                "latency",
                "",
                requests > 0 and p99 > self.rules.latency_p99_seconds,
                "warning",
                f"p99 latency {p99 * 1000:.1f} ms over the last "
                f"{self.rules.window_seconds:.0f} s (threshold "
                f"{self.rules.latency_p99_seconds * 1000:.0f} ms)",
                p99,
            )
        )
        return conditions

    # -- readers --------------------------------------------------------------------------

    def model_monitor(self, model: str, version: int) -> ModelMonitor | None:
        return self._monitors.get((model, version))

    def reports(self) -> list[ModelReport]:
        with self._lock:
            return [self._latest[k] for k in sorted(self._latest)]

    def report(self, model: str, version: int | None = None) -> ModelReport:
        with self._lock:
            keys = [k for k in self._latest if k[0] == model]
            if version is not None:
                keys = [k for k in keys if k[1] == version]
            if not keys:
                raise NotFound(
                    f"no monitoring data for model {model!r}"
                    + (f" version {version}" if version is not None else "")
                    + " yet: it has answered no requests since the server started"
                )
            return self._latest[max(keys)]

    def feedback(self, model: str, labels: Mapping[str, Any]) -> FeedbackResult:
        """Join labels (by request id) to predictions of ``model``; returns what matched.

        A label is one value for a one-row request, or a list with one value per row.
        Predictions are looked up among the recent ones in memory, then in the inference log
        (which survives restarts and is shared by worker processes). Every label is checked
        before any is applied, so a bad one rejects the call and changes nothing.
        """
        with self._lock:
            self._drain()
            self._write_log()
            now = time.time()
            missing = [
                rid
                for rid in labels
                if rid not in self._joins or self._joins[rid].version.model != model
            ]
            logged = self.log.find(model, missing) if self.log is not None and missing else {}
            joined: list[tuple[ModelMonitor, list[tuple[Any, Any]], Any]] = []
            matched: dict[str, Any] = {}
            unknown: list[str] = []
            for request_id, label in labels.items():
                answered = self._joins.get(request_id)
                if answered is not None and answered.version.model == model:
                    monitor = self._monitor(answered.version)
                    predicted, proba = _predicted(monitor, answered.outputs)
                elif request_id in logged:
                    monitor, predicted, proba = self._logged(logged[request_id])
                else:
                    unknown.append(request_id)
                    continue
                joined.append((monitor, self._pair(request_id, label, predicted), proba))
                matched[request_id] = label
            accepted = 0
            for monitor, rows, proba in joined:
                for index, (truth, predicted) in enumerate(rows):
                    row_proba = None if proba is None else np.asarray(proba[index], dtype=float)
                    monitor.label(truth, predicted, row_proba, now)
                accepted += len(rows)
            if self.log is not None and matched:
                self.log.set_labels(model, matched)
            self._evaluate()
            return FeedbackResult(accepted, unknown)

    def _logged(self, entry: LogEntry) -> tuple[ModelMonitor, list[Any], Any]:
        """The monitor, predicted values and probabilities of a request found in the log."""
        monitor = self._monitor(self.registry.get_version(entry.model, entry.version))
        return (monitor, *_predicted(monitor, entry.outputs))

    @staticmethod
    def _pair(request_id: str, label: Any, predicted: list[Any]) -> list[tuple[Any, Any]]:
        truths = label if isinstance(label, list) else [label]
        if len(truths) != len(predicted):
            raise BadRequest(
                f"request {request_id!r} predicted {len(predicted)} row(s) but got "
                f"{len(truths)} label(s); send one label per row (a list for several rows)"
            )
        return list(zip(truths, predicted, strict=True))


def _predicted(monitor: ModelMonitor, outputs: Mapping[str, Any]) -> tuple[list[Any], Any]:
    """One predicted value per row (the main output's first column), and probabilities."""
    bins = monitor.predictions
    output = bins.output if bins is not None else next(iter(outputs))
    predicted = np.asarray(outputs[output], dtype=object)
    values = predicted.reshape(len(predicted), -1)[:, 0].tolist()
    return values, outputs.get("predict_proba")
