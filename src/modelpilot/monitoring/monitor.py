"""The monitor: taps answered requests on the loop, does all its work on one thread of its own.

On the event loop the monitor only appends to queues: one entry per model call
(``predicted``, however many requests the batch held) and a latency per request
(``request_finished``). Its thread, every ``tick_seconds``, takes what queued up, joins it by
version into one array per input and output, bins that into the version's ``ModelMonitor``
and writes the sampled part to the inference log (numbers as raw bytes); every
``evaluate_seconds`` it closes a service interval, recomputes every version's report and
applies the alert rules. Readers (``/metrics``, ``/api/...``, the dashboard) get the last
computed reports, never a half-updated one. On ``stop`` everything queued is processed and
written, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.errors import BadRequest, NotFound
from modelpilot.monitoring.alerts import AlertBook, AlertRules, Condition
from modelpilot.monitoring.history import ServiceHistory, ServicePoint, merge_points
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import LogBatch, LogEntry, log_batch
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

SLICE = 4096
"""Model calls taken in at a time by the monitor thread before it lets readers in.

Large enough that a round at full load is one slice: every handover of the interpreter lock
between this thread and the event loop costs the loop more than the work it lets through
(slices of 256 calls gave 6% less throughput and a higher p99 than one slice per round, in an
interleaved A/B at 16 connections)."""


@dataclass(frozen=True, slots=True)
class _Answered:
    """The requests one model call answered (as the engine told them)."""

    at: float
    version: ModelVersion
    request_ids: Sequence[str]
    rows: Sequence[int]
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class _Merged:
    """Calls of one version taken in together: all their requests and rows, in order."""

    version: ModelVersion
    request_ids: list[str]
    times: list[float]
    rows: list[int]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


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
        """Model calls allowed to wait for the thread; past that, new ones are dropped."""
        self._queue: deque[_Answered] = deque()
        self._monitors: dict[tuple[str, int], ModelMonitor] = {}
        self._latest: dict[tuple[str, int], ModelReport] = {}
        # Recent answers by request id, for labels: the call and the request's rows in it.
        # With every request in the inference log, labels join there and this stays empty.
        self._joins: OrderedDict[str, tuple[_Answered, int, int]] = OrderedDict()
        self._remember = log is None or sample_rate < 1.0
        self._log_pending: deque[LogBatch] = deque()
        self._join_capacity = join_capacity
        self._lock = threading.RLock()
        # Held while a round's log batches are on their way to the store, outside ``_lock`` so
        # the next drain need not wait for the disk. Whoever needs the log complete (labels,
        # flush) takes it after ``_lock``; the monitor thread never takes them the other way.
        self._log_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._random = np.random.default_rng()
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

    def predicted(
        self,
        version: ModelVersion,
        request_ids: Sequence[str],
        rows: Sequence[int],
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        if len(self._queue) >= self.max_queue:
            # Serving comes first: rather than hold on to ever more requests, skip these.
            self.dropped += len(request_ids)
            return
        self._queue.append(_Answered(time.time(), version, request_ids, rows, inputs, outputs))

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
                # In slices, so that labels and reports need not wait for a huge backlog.
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
        """Take in up to ``limit`` queued calls (all by default); True if more are left."""
        taken: list[_Answered] = []
        queue = self._queue
        while queue and (limit is None or len(taken) < limit):
            taken.append(queue.popleft())
        if not taken:
            return False
        if self._remember:
            self._keep_for_labels(taken)
        # Calls that can be joined into one array per name: same version, same names.
        groups: dict[tuple[Any, ...], list[_Answered]] = {}
        for answered in taken:
            key = (answered.version.key, *answered.inputs, None, *answered.outputs)
            groups.setdefault(key, []).append(answered)
        for group in groups.values():
            for merged in _merge(group):
                self._observe(self._monitor(merged.version), merged)
                if self.log is not None:
                    batch = self._sample(merged)
                    if batch is not None:
                        self._log_pending.append(batch)
        return bool(queue)

    def _keep_for_labels(self, taken: list[_Answered]) -> None:
        joins = self._joins
        for answered in taken:
            start = 0
            for request_id, rows in zip(answered.request_ids, answered.rows, strict=True):
                joins[request_id] = (answered, start, start + rows)
                start += rows
        while len(joins) > self._join_capacity:
            joins.popitem(last=False)

    def _write_log(self) -> None:
        """One transaction for what the slices of a round set aside for the log.

        Returns once the log holds every batch set aside before the call, including those a
        concurrent call was writing.
        """
        with self._log_lock:
            pending = self._log_pending
            rows = [pending.popleft() for _ in range(len(pending))]
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

    def _observe(self, monitor: ModelMonitor, merged: _Merged) -> None:
        signature = monitor.version.signature
        rows = merged.inputs.get(signature.inputs[0].name) if signature.is_tabular else None
        monitor.observe(len(merged.request_ids), rows, merged.outputs, merged.times[-1])

    def _sample(self, merged: _Merged) -> LogBatch | None:
        """The log's share of ``merged`` (all of it at the default rate), encoded."""
        ids, times, rows = merged.request_ids, merged.times, merged.rows
        inputs, outputs = merged.inputs, merged.outputs
        if self.sample_rate < 1.0:
            keep = self._random.random(len(ids)) < self.sample_rate
            if not keep.any():
                return None
            if not keep.all():
                ids = [i for i, k in zip(ids, keep, strict=True) if k]
                times = [t for t, k in zip(times, keep, strict=True) if k]
                rows = [r for r, k in zip(rows, keep, strict=True) if k]
                mask = np.repeat(keep, merged.rows)
                inputs = {name: array[mask] for name, array in inputs.items()}
                outputs = {name: array[mask] for name, array in outputs.items()}
        version = merged.version
        return log_batch(version.model, version.version, ids, times, rows, inputs, outputs)

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
                if rid not in self._joins or self._joins[rid][0].version.model != model
            ]
            logged = self.log.find(model, missing) if self.log is not None and missing else {}
            joined: list[tuple[ModelMonitor, list[tuple[Any, Any]], Any]] = []
            matched: dict[str, Any] = {}
            unknown: list[str] = []
            for request_id, label in labels.items():
                kept = self._joins.get(request_id)
                if kept is not None and kept[0].version.model == model:
                    answered, start, end = kept
                    monitor = self._monitor(answered.version)
                    outputs = {name: v[start:end] for name, v in answered.outputs.items()}
                    predicted, proba = _predicted(monitor, outputs)
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


def _merge(group: list[_Answered]) -> list[_Merged]:
    """``group``'s calls as one: every input and output concatenated, requests in order.

    Calls whose arrays cannot be joined (rows of different shapes) stay apart.
    """
    first = group[0]
    if len(group) == 1:
        inputs, outputs = dict(first.inputs), dict(first.outputs)
    else:
        try:
            inputs = {n: np.concatenate([a.inputs[n] for a in group]) for n in first.inputs}
            outputs = {n: np.concatenate([a.outputs[n] for a in group]) for n in first.outputs}
        except ValueError:
            return [merged for answered in group for merged in _merge([answered])]
    ids: list[str] = []
    times: list[float] = []
    rows: list[int] = []
    for answered in group:
        ids.extend(answered.request_ids)
        rows.extend(answered.rows)
        times.extend([answered.at] * len(answered.request_ids))
    return [_Merged(first.version, ids, times, rows, inputs, outputs)]
