"""The per-prediction half of monitoring: binning what was answered, and logging it.

Everything a model call answered passes through a ``Tap``: it counts the inputs into the
version's drift bins and the outputs into its prediction bins, writes the sampled part to
the inference log, and keeps recent answers by request id so that labels can find them. The
``Monitor`` hands it the calls of each round already joined into one array per name (see
``tap_batches.merge``), asks it for its windows every evaluation, and for the predictions that
arriving labels belong to.

A tap runs on the monitor's thread (``LocalTap``) or in a process of its own
(``tap_process.TapProcess``, the server's default), where its work never competes with
serving for the interpreter lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from modelpilot.errors import NotFound, Unavailable
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import LogBatch, log_batch
from modelpilot.monitoring.model_monitor import ModelMonitor, MonitorConfig
from modelpilot.monitoring.monitor_state import MonitorState
from modelpilot.monitoring.tap_batches import Found, Merged, Relabelled
from modelpilot.monitoring.tap_recent import RecentAnswers
from modelpilot.registry.outage import Outage, cause, is_outage
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.repeated_errors import RepeatedErrors

logger = logging.getLogger(__name__)

RETRY_SECONDS = 60.0
"""How long requests whose inference log write failed are kept to be written again (the
database restarting, a disk full for a moment): a write fails for as long as the log is
down, and every request answered meanwhile would be lost. Older ones are dropped, and
counted in ``unlogged``."""

RETRY_BYTES = 64 << 20
"""At most this many bytes of such requests are kept; past it the oldest are dropped."""


class TapFailed(Unavailable):
    """The monitoring process failed a request, or is gone."""


class TapBusy(TapFailed):
    """The monitoring process did not answer in time, but it is working (a large round, its
    windows restored from the log): it is left to finish, and answers again once it has."""


class Tap(Protocol):
    takes_on_loop: bool
    """Whether ``take`` is cheap enough to call on the event loop (it only hands over)."""

    @property
    def log_delay(self) -> float:
        """Seconds a request taken may wait before the inference log holds it (where a
        sibling worker's lookups can find it)."""

    @property
    def failures(self) -> int:
        """Batches whose monitoring raised (logged; the rest carry on)."""

    @property
    def restarts(self) -> int:
        """Times the tap started again with empty windows (its process died; the totals it
        had told carry on in ``states``)."""

    @property
    def dropped(self) -> int:
        """Requests handed over but not monitored (the tap fell too far behind)."""

    @property
    def unlogged(self) -> int:
        """Requests monitored but never written to the inference log: its writes failed for
        longer than ``RETRY_SECONDS``, or it could not be opened at all."""

    @property
    def pid(self) -> int | None:
        """The process doing the tap's work, where it is not this one."""

    def take(self, batches: Sequence[Merged]) -> None:
        """Bin and log ``batches``."""

    def states(self, now: float) -> list[MonitorState]:
        """Every watched version's windows, including everything taken so far, and the
        running totals of the tap's processes that died (as each last told them)."""

    def lookup(self, model: str, request_ids: Sequence[str]) -> dict[str, Found]:
        """The answers of ``model`` to these requests that are still known."""

    def set_labels(self, model: str, labels: Mapping[str, Any]) -> dict[str, bool]:
        """Keep ``labels`` beside the logged requests; returns the requests that held a
        label already, each with whether it was this one (then left as it was; see
        ``InferenceLog.set_labels``). Nothing without a log: it knows no labels."""

    def labelled_since(self, since: float, limit: int) -> list[Relabelled]:
        """The labels the log holds from ``since`` on (each version's newest ``limit``, of
        each model's newest ``limit * LABELS_SCANNED``), with their predictions: what a
        restarted server's quality windows held."""

    def write(self) -> None:
        """Write every request taken so far to the log now (its writes may wait a little)."""

    def close(self) -> None:
        """Write out everything taken (nothing is lost on a clean shutdown)."""

    def closing(self, by: float) -> None:
        """The server is stopping: no question asked from now on waits past ``by`` (a
        ``time.monotonic()``), and ``close`` is done by then."""


LABELS_SCANNED = 10
"""How many times a quality window's rows of a model's newest labels ``labelled_since`` reads,
to keep each version's newest: capped by model, a version rolled back to after another took
2,400 newer labels came back from a restart with 100 labels of its 1,000, and read accuracy
0.15 where it had read 0.79."""


class LocalTap:
    """A ``Tap`` in this process, doing the work in whichever thread calls. Thread-safe."""

    takes_on_loop = False
    restarts = 0
    pid = None

    def __init__(
        self,
        registry: Registry,
        config: MonitorConfig,
        log: InferenceLog | None = None,
        sample_rate: float = 1.0,
        join_capacity: int = 100_000,
        log_seconds: float = 0.0,
        restore: bool = False,
        refs: Sequence[str] | None = None,
        log_missing: bool = False,
    ) -> None:
        """With ``restore``, the windows start with what the log holds of their last
        ``config.window_seconds`` (see :meth:`restore`) for the versions ``refs`` reach.
        ``log_missing``: a log was wanted but could not be opened (``log`` is None), so every
        request it would have held counts in ``unlogged``. ``join_capacity``: how many of
        the newest requests labels can join in memory where the log does not hold them (it
        is off or sampled); the server gives the log's bound,
        ``MODELPILOT_INFERENCE_LOG_MAX_ROWS``."""
        self.registry = registry
        self.config = config
        self.log = log
        self.sample_rate = sample_rate
        self.log_seconds = log_seconds
        """How long taken requests may wait to be written to the log together (0: written
        with every ``take``). A lookup, labels and ``close`` write them first."""
        self.log_delay = log_seconds
        self._unlogged: list[LogBatch] = []
        self._logged_at = time.monotonic()
        self._failures = 0
        self.dropped = 0
        self.unlogged = 0
        """Requests never written to the log (see ``Tap.unlogged``)."""
        self._log_missing = log_missing and log is None
        self._closed = False
        self._observe_errors = RepeatedErrors(logger)
        """Rounds that could not be watched (see ``_take``), logged once a minute by kind."""
        self._log_outage = Outage(logger)
        """The inference log's writes failing (see ``_write_log``)."""
        self._unlogged_before = 0
        """``unlogged`` when they began to."""
        self._lock = threading.Lock()
        self._monitors: dict[tuple[str, int], ModelMonitor] = {}
        self._recent = RecentAnswers(join_capacity)
        """For labels whose requests the log does not hold (it is off, or sampled)."""
        self._remember = log is None or sample_rate < 1.0
        self._random = np.random.default_rng()
        if restore:
            self.restore(time.time(), refs)

    @property
    def failures(self) -> int:
        """Batches whose monitoring raised, log writes that failed, and logged batches that
        could not be read back."""
        return self._failures + (self.log.unreadable if self.log is not None else 0)

    def count_failure(self) -> None:
        self._failures += 1

    def restore(self, now: float, refs: Sequence[str] | None = None) -> int:
        """Put back in the windows the requests the log holds from the last
        ``config.window_seconds`` (at most ``config.window_rows`` per version), so that a
        server that restarts watches on from where it stopped rather than from empty windows;
        returns how many requests came back. Their totals are not counted again. Only the
        versions that requests reach now on a server of ``refs`` come back
        (``served_versions``): a version rolled away from, or another server's model, would
        show its windows, and raise its alerts, until they aged out.

        Nothing the log holds stops the monitoring that follows: a version whose requests
        cannot be put back starts with what could be (logged and counted in ``failures``)."""
        if self.log is None:
            return 0
        since = now - self.config.window_seconds
        restored = 0
        with self._lock:
            try:
                wanted = served_versions(self.registry, refs)
                logged = self.log.versions_since(since)
            except Exception as exc:
                self._failures += 1
                logger.error(
                    "restoring the windows from the inference log failed: %s",
                    cause(exc),
                    exc_info=None if is_outage(exc) else exc,
                )
                return 0
            for model, number in logged:
                if (model, number) not in wanted:
                    continue
                try:
                    restored += self._restore_version(self.log, model, number, since)
                except NotFound:  # deleted since: nothing to watch
                    continue
                except Exception:
                    self._failures += 1
                    logger.exception(
                        "restoring %s:%d from the inference log failed; its windows start "
                        "with what was put back before",
                        model,
                        number,
                    )
        if restored:
            logger.info("monitoring windows restored from the inference log: %d requests", restored)
        return restored

    def _restore_version(self, log: InferenceLog, model: str, number: int, since: float) -> int:
        version = self.registry.get_version(model, number)
        entries = log.recent(model, number, self.config.window_rows, since)
        monitor = monitor_of(self._monitors, self.registry, version, self.config)
        skipped = monitor.restore(entries)
        if skipped is not None:
            self._failures += 1
            logger.error(
                "restoring %s:%d from the inference log: %d of its %d logged requests could "
                "not be put back in the windows (%s); skipped",
                model,
                number,
                skipped.requests,
                len(entries),
                skipped.error,
            )
            return len(entries) - skipped.requests
        return len(entries)

    def take(self, batches: Sequence[Merged]) -> None:
        with self._lock:
            self._take(batches)

    def _take(self, batches: Sequence[Merged]) -> None:
        if self._remember:
            self._recent.keep(batches)
        pending: list[LogBatch] = []
        for merged in batches:
            try:
                self._observe(merged)
                if self.log is not None:
                    batch = self._sample(merged)
                    if batch is not None:
                        pending.append(batch)
            except Exception as exc:
                # One version's bad data must not stop the others being watched. Once a
                # minute: a version whose monitor needs the registry, while it is down,
                # failed every round (4 a second), each with a traceback of ~100 lines.
                self._failures += 1
                self._observe_errors.error(
                    type(exc).__qualname__,
                    "monitoring %s:%d failed: %s",
                    *merged.version.key,
                    cause(exc),
                    exc_info=None if is_outage(exc) else exc,
                )
        if self._log_missing:
            self.unlogged += sum(self._sampled(len(merged.request_ids)) for merged in batches)
        self._unlogged += pending
        if time.monotonic() - self._logged_at >= self.log_seconds:
            self._write_log()

    def _write_log(self) -> None:
        """Write the requests taken but not yet logged, in one transaction.

        If that fails, they wait for the next write (up to ``RETRY_SECONDS`` and
        ``RETRY_BYTES``; past that they are counted in ``unlogged``): a lookup or labels
        that asked for the write go on to read what the log holds."""
        unlogged, self._unlogged = self._unlogged, []
        self._logged_at = time.monotonic()
        if not unlogged or self.log is None:
            return
        try:
            self.log.append(unlogged)
        except Exception as exc:
            self._failures += 1
            if not self._log_outage.down:
                self._unlogged_before = self.unlogged
            # Once a minute while it lasts; a database or a disk out of reach (is_outage) in
            # one line, without the traceback of ~60 lines the driver's error comes with.
            self._log_outage.failed(
                exc,
                "writing %d requests to the inference log failed (%s); they are written with "
                "the next requests if the log takes them within %.0f s",
                sum(len(b.request_ids) for b in unlogged),
                cause(exc),
                RETRY_SECONDS,
            )
            self._unlogged = self._kept_for_retry(unlogged)
            return
        ended = self._log_outage.over()
        if ended is not None:
            # Else only the errors said anything, and their stopping was the only sign.
            logger.info(
                "writing to the inference log works again, after %.0f s (%d writes failed): "
                "%d requests written, those that waited among them; %d were kept waiting too "
                "long and are not logged (modelpilot_monitor_unlogged_total counts them)",
                ended.seconds,
                ended.failures,
                sum(len(b.request_ids) for b in unlogged),
                self.unlogged - self._unlogged_before,
            )

    def _kept_for_retry(self, unlogged: list[LogBatch]) -> list[LogBatch]:
        """The newest of ``unlogged`` within ``RETRY_SECONDS`` and ``RETRY_BYTES``; the rest
        are counted in ``unlogged``."""
        horizon = time.time() - RETRY_SECONDS
        kept: list[LogBatch] = []
        size = 0
        for batch in reversed(unlogged):
            size += _size(batch)
            if batch.times[-1] < horizon or size > RETRY_BYTES:
                self.unlogged += len(batch.request_ids)
            else:
                kept.append(batch)
        return kept[::-1]

    def _observe(self, merged: Merged) -> None:
        monitor = monitor_of(self._monitors, self.registry, merged.version, self.config)
        signature = merged.version.signature
        rows = merged.inputs.get(signature.inputs[0].name) if signature.is_tabular else None
        monitor.observe(len(merged.request_ids), rows, merged.outputs, merged.times[-1])

    def states(self, now: float) -> list[MonitorState]:
        with self._lock:
            return [monitor.state(now) for monitor in self._monitors.values()]

    def lookup(self, model: str, request_ids: Sequence[str]) -> dict[str, Found]:
        with self._lock:
            return self._lookup(model, request_ids)

    def _lookup(self, model: str, request_ids: Sequence[str]) -> dict[str, Found]:
        found = self._recent.find(model, request_ids)
        missing = [rid for rid in request_ids if rid not in found]
        if self.log is not None and missing:
            self._write_log()
            for request_id, entry in self.log.find(model, missing).items():
                found[request_id] = Found(entry.model, entry.version, entry.outputs)
        return found

    def set_labels(self, model: str, labels: Mapping[str, Any]) -> dict[str, bool]:
        if self.log is None:
            return {}
        with self._lock:
            self._write_log()
        return self.log.set_labels(model, labels)

    def labelled_since(self, since: float, limit: int) -> list[Relabelled]:
        if self.log is None:
            return []
        with self._lock:
            self._write_log()
        relabelled = []
        for model, labels in self.log.labels_since(since, limit * LABELS_SCANNED).items():
            found = self.lookup(model, [stored.request_id for stored in labels])
            kept: dict[int, int] = {}  # labels kept of each version, the newest first
            newest_first = []
            for stored in reversed(labels):
                prediction = found.get(stored.request_id)
                if prediction is not None and kept.get(prediction.version, 0) < limit:
                    kept[prediction.version] = kept.get(prediction.version, 0) + 1
                    newest_first.append(
                        Relabelled(stored.request_id, stored.label, stored.at, prediction)
                    )
            relabelled += newest_first[::-1]
        return relabelled

    def write(self) -> None:
        with self._lock:
            self._write_log()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._write_log()
                if self._unlogged:
                    lost = sum(len(b.request_ids) for b in self._unlogged)
                    self.unlogged += lost
                    self._unlogged = []
                    logger.error("closing: %d requests could not be written to the log", lost)
            finally:
                if self.log is not None:
                    self.log.close()

    def closing(self, by: float) -> None:
        """Nothing to bound: the work is done by whoever calls, in this process."""

    def _sampled(self, requests: int) -> int:
        """How many of ``requests`` the log's sample would take."""
        if self.sample_rate >= 1.0:
            return requests
        return int((self._random.random(requests) < self.sample_rate).sum())

    def _sample(self, merged: Merged) -> LogBatch | None:
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


def _size(batch: LogBatch) -> int:
    """Bytes ``batch`` holds, near enough."""
    packed = len(batch.packed) if batch.packed is not None else 0
    return packed + len(batch.inputs) + len(batch.outputs) + 48 * len(batch.request_ids)


def served_versions(registry: Registry, refs: Sequence[str] | None) -> set[tuple[str, int]]:
    """The versions (model, version) that requests reach now on a server of ``refs``; None
    means every model in the registry, each at its ``production`` alias, else its latest."""
    if refs is None:
        refs = [info.name for info in registry.list_models()]
    versions = set()
    for ref in refs:
        try:
            versions.add(registry.resolve(ref).key)
        except NotFound:  # nothing registered under it yet
            continue
    return versions


def monitor_of(
    monitors: dict[tuple[str, int], ModelMonitor],
    registry: Registry,
    version: ModelVersion,
    config: MonitorConfig,
) -> ModelMonitor:
    """``version``'s monitor in ``monitors``, made on first use against its reference
    profile (if it has one)."""
    monitor = monitors.get(version.key)
    if monitor is None:
        profile = None
        if version.has_reference:
            profile = registry.reference_profile(version.model, version.version)
        monitor = monitors[version.key] = ModelMonitor(version, profile, config)
    return monitor
