"""Labels posted to a ``Monitor``: joined to the predictions they belong to, and put back in
the quality windows from the inference log at start-up (and for a version served again).

Each public function is the body of the ``Monitor`` method of its name, and takes the monitor
as ``self``; they are called only from there."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelpilot.errors import InvalidInput, NotFound, RegistryUnavailable
from modelpilot.monitoring.feedback import FeedbackResult, join, join_all, look_again
from modelpilot.monitoring.model_monitor import ModelMonitor
from modelpilot.monitoring.tap import TapFailed, served_versions
from modelpilot.monitoring.tap_batches import Found, Relabelled
from modelpilot.registry.outage import is_outage
from modelpilot.repeated_errors import first_line

if TYPE_CHECKING:
    from modelpilot.monitoring.monitor import Monitor

logger = logging.getLogger("modelpilot.monitoring.monitor")


def feedback(self: Monitor, model: str, labels: Mapping[str, Any]) -> FeedbackResult:
    """Join ``labels`` to predictions of ``model`` on record now (``Monitor.feedback``)."""
    return _joined(self, model, labels, _on_record(self, model, list(labels)))


async def feedback_async(self: Monitor, model: str, labels: Mapping[str, Any]) -> FeedbackResult:
    """Join ``labels`` to predictions of ``model``, sibling workers' on their way too
    (``Monitor.feedback_async``). Lookups and joins go to threads, the waits stay on the loop."""
    found = await asyncio.to_thread(_on_record, self, model, list(labels))
    if len(found) < len(labels) and self.log_shared:
        missing = [i for i in labels if i not in found]
        found.update(await look_again(self.tap, model, missing, self.sibling_seconds))
    return await asyncio.to_thread(_joined, self, model, labels, found)


def _on_record(self: Monitor, model: str, request_ids: list[str]) -> dict[str, Found]:
    """The predictions of ``request_ids`` the tap knows, once it has every call this process
    answered before (a label may come as soon as its prediction)."""
    self._ship()
    return self.tap.lookup(model, request_ids)


def _joined(
    self: Monitor, model: str, labels: Mapping[str, Any], found: Mapping[str, Found]
) -> FeedbackResult:
    """``labels`` joined to the predictions ``found`` for them, and kept beside them in the
    inference log; all are checked before any is kept (InvalidInput: none is), and none is
    applied unless the log took them (TapFailed: none is).

    A label the log held already is not counted again, and one it held unchanged is not
    applied again either: the quality window dedups only the labels it still holds, and a
    re-sent label of a request that had left it (a nightly re-sync of a week's labels) came
    back as the newest, and counted again. The log knows them wherever they were posted,
    so a label posted again to another worker or server does not count again either."""
    joined, matched, unknown = join_all(labels, found, lambda m, v: _locked_monitor(self, m, v))
    held = self.tap.set_labels(model, matched) if matched else {}
    accepted = 0
    now = time.time()
    for start in range(0, len(joined), APPLIED_AT_ONCE):
        with self._lock:
            for request in joined[start : start + APPLIED_AT_ONCE]:
                if held.get(request.request_id, False):
                    accepted += len(request.pairs)  # the label it had: nothing changes
                    continue
                accepted += request.apply(now, count=request.request_id not in held)
                self._labelled.add(request.monitor.version.key)
    return FeedbackResult(accepted, unknown)


APPLIED_AT_ONCE = 2_000
"""How many requests' labels a post applies to the quality windows for each hold of the
monitor's lock: readers (a scrape, ``/api/monitoring``, the thread's evaluation) wait for no
more than that. Held for a whole post, a read during a post of 50,000 labels waited for all
of it (and its checks, held too, which need no lock)."""


def _locked_monitor(self: Monitor, model: str, version: int) -> ModelMonitor:
    """``_version_monitor`` under the monitor's lock (it may make the monitor)."""
    with self._lock:
        return _version_monitor(self, model, version)


def report_labelled(self: Monitor) -> None:
    """Report again on the versions labels were joined to since their last report
    (``Monitor.report_labelled``); the alerts and this worker's snapshot follow them.

    Not at every post: a post of one label paid for its version's whole report (a bootstrap
    over the quality window) under the monitor's lock, and posts that matched were answered at
    35 a second. Not every report either, with the tap asked for its windows: a round trip
    to the monitoring process and every version's report, for labels that changed one
    version's quality window. The other versions' reports stand; this one's windows are the
    tap's as the last report had them, as its drift and predictions were shown until now
    (the thread's next round takes newer)."""
    if not self._labelled:
        return
    now = time.time()
    with self._lock:
        keys, self._labelled = self._labelled, set()
        if not keys:
            return  # another reader reported on them meanwhile
        own = {key: monitor.state(now) for key, monitor in self._monitors.items()}
        tapped = [*self._last_tapped, *self._inherited]
        others = tapped + (self._gather() if self.exchange is not None else [])
        self._report(now, own, tapped, others, keys)


def restore_labels(
    self: Monitor, versions: set[tuple[str, int]] | None = None, evaluate: bool = True
) -> int:
    """Restore the inference log's recent labels (``Monitor.restore_labels``); ``evaluate``:
    report on them at once (else the caller's round does)."""
    since = time.time() - self.config.performance_seconds
    relabelled = self.tap.labelled_since(since, self.config.performance_rows)
    wanted = served_versions(self.registry, self._restore_refs) if versions is None else versions
    restored = _apply_logged(self, relabelled, wanted)
    if restored:
        of = "" if versions is None else " of " + ", ".join(f"{m}:{v}" for m, v in sorted(versions))
        logger.info("quality windows%s restored from the inference log: %d labels", of, restored)
    if relabelled and evaluate:
        self._evaluate(close_interval=False)
    return restored


def restore_quietly(self: Monitor, evaluate: bool = True) -> bool:
    """The thread's restore of every served version's labels (``restore_labels``), where it
    is still to do: a failure is counted and logged (one line, once a minute, with the
    traceback the first time where it is no outage), and the next round tries again
    (``restore_pending``). Returns False where the log (or the registry) was out of reach.

    Labels posted meanwhile do not count twice: the log holds them too, and a window takes
    a label it holds already (by request and row) as nothing new, and a restored label
    older than those posted since takes its place in time (``PerformanceWindow.add``)."""
    serving = self._serving()
    try:
        restore_labels(self, evaluate=evaluate)
    except Exception as exc:
        self._failures += 1
        outage = isinstance(exc, (TapFailed, RegistryUnavailable)) or is_outage(exc)
        self._errors.error(
            "restore",
            "restoring labels from the inference log failed; trying again every %g s until "
            "it is read: %s",
            self.evaluate_seconds,
            first_line(exc),
            exc_info=not outage,
        )
        return not outage
    self._labels_unrestored = False
    self._served_before = serving  # their labels are back, those of versions returned to too
    return True


def restore_pending(self: Monitor) -> bool:
    """``restore_quietly`` for a round, if the restore is still to do (else True); the round
    evaluates after it."""
    return not self._labels_unrestored or restore_quietly(self, evaluate=False)


def restore_returned(self: Monitor) -> None:
    """Put the logged labels of the versions that a model's requests went to again since the
    thread's last look (an alias moved back: a rollback) back in their quality windows, as a
    server started now would: behind one load balancer, a server restarted meanwhile judged
    the version rolled back to on the 320 labels of the last day, the others on the 20 posted
    since. Called by the monitor's thread, where it restores labels."""
    serving = self._serving()
    returned = {
        (model, version)
        for model, version in serving.items()
        if self._served_before.get(model, version) != version
    }
    self._served_before = serving
    if returned:
        restore_labels(self, returned)


def catch_up_labels(self: Monitor) -> int:
    """Take the labels other servers of the shared log took since the last look
    (``Monitor.catch_up_labels``); returns how many rows they label (those read again
    included, which change nothing)."""
    now = time.time()
    since = self.labels_read_to - LABELS_LAG_SECONDS
    # The versions served, and those watched here already: a version rolled away from keeps
    # taking the labels posted for it here, and so those posted to the other servers. (Only
    # the served ones, and the servers disagreed on the version rolled back from, each
    # judging it on its share of the labels.)
    with self._lock:
        watched = set(self._monitors)
    versions = served_versions(self.registry, self._restore_refs) | watched
    relabelled = self.tap.labelled_since(since, self.config.performance_rows)
    restored = _apply_logged(self, relabelled, versions)
    # Read up to ``now`` only once they are applied: a look the registry or the tap failed
    # reads from the same point next time. (Moved on before, the labels read in a registry
    # outage longer than ``LABELS_LAG_SECONDS`` were dropped, never to be read again.)
    self.labels_read_to = now
    return restored


def catch_up_quietly(self: Monitor) -> None:
    """``catch_up_labels`` for the monitor thread: a failure is counted and logged (one line,
    once a minute), and the evaluation goes on; the next, an interval later, tries again.

    The registry failing is one too: its database back from an outage, the monitoring
    process may answer while this process's registry is still in its silence pause
    (``registry.silent_postgres``, up to 10 s), and its RegistryUnavailable, escaping the
    round before it evaluated, had the thread try again at once, in a loop: 121 tracebacks
    in 0.9 s, each counted in ``modelpilot_monitor_failures_total``."""
    try:
        catch_up_labels(self)
    except (TapFailed, RegistryUnavailable) as exc:
        self._failures += 1
        self._errors.error("labels", "reading other servers' labels failed: %s", first_line(exc))


LABELS_LAG_SECONDS = 10.0
"""How far back each look for other servers' labels reaches past the last: a label is
stamped when its server writes it, and commits a moment later, so that one stamped just
before the last look may not have been there to see. Labels read again change nothing."""


def _apply_logged(
    self: Monitor, relabelled: list[Relabelled], versions: set[tuple[str, int]]
) -> int:
    """Put labels read from the log in the quality windows of ``versions``, joined to their
    logged predictions; not counted in the labels total (their server counted them when they
    were posted). Returns how many rows they labelled."""
    restored = unreadable = 0
    with self._lock:
        for item in relabelled:
            found = item.found
            if (found.model, found.version) not in versions:
                continue  # a version rolled away from, or another server's model
            try:
                monitor = _version_monitor(self, found.model, found.version)
                request = join(monitor, item.request_id, item.label, found.outputs)
            except (NotFound, InvalidInput):
                continue  # its version is gone, or it no longer fits: as if never posted
            except (ValueError, TypeError, KeyError, IndexError):
                unreadable += 1  # a logged prediction of no shape a label can join
                continue
            restored += request.apply(item.at, count=False)
    if unreadable:
        self._failures += 1
        logger.error(
            "reading labels from the inference log: %d of them belong to logged predictions "
            "they cannot be joined to; skipped",
            unreadable,
        )
    return restored


def _version_monitor(self: Monitor, model: str, version: int) -> ModelMonitor:
    """The monitor of a version labels came for (a registry read once per version)."""
    monitor = self._monitors.get((model, version))
    return monitor or self._monitor(self.registry.get_version(model, version))
