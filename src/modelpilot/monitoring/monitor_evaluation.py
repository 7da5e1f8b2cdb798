"""A ``Monitor``'s evaluation: every version's report, and what the alert rules judge.

Reports come from the tap's windows (and sibling workers') and this process's labels; the
alert rules judge them, stalled rollouts and the service history of the whole server. The
readers' answer for a model is here too: which report stands for it, or why none does.

Each function is the body of the ``Monitor`` method of its name (``_evaluate`` for
``evaluate``, and so on; ``report_of`` for ``report``), and takes the monitor as ``self``; they
are called only from there."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from modelpilot.errors import NotFound
from modelpilot.monitoring.alert_rules import (
    drift_held,
    model_conditions,
    rollout_conditions,
    service_conditions,
)
from modelpilot.monitoring.alerts import Alert, Condition
from modelpilot.monitoring.drift_results import HeldDrift
from modelpilot.monitoring.history import ServicePoint, merge_points, next_due
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.monitor_state import MonitorState, totals_of
from modelpilot.monitoring.tap import TapFailed
from modelpilot.monitoring.version_errors import (
    VersionTraffic,
    version_error_conditions,
    version_traffic,
)
from modelpilot.registry.types import ModelVersion
from modelpilot.repeated_errors import first_line

if TYPE_CHECKING:
    from modelpilot.monitoring.monitor import Monitor


def evaluate(self: Monitor, close_interval: bool = True) -> None:
    """Recompute every report and the alerts; ``close_interval`` also ends the service
    history's interval (the thread's and ``flush``'s do, on their clock; labels, which may
    come many times a second, only recompute)."""
    now = time.time()
    try:
        tapped = self.tap.states(now)
    except TapFailed as exc:
        # Reported without the tap's windows this once; labels and alerts carry on. (Every
        # evaluation until a new monitoring process answers: logged once a minute.) Its
        # running totals stand as it last told them: left out, a single-process server's
        # predictions by class went back to 0 when its monitoring process was found dead
        # before its replacement answered, and a counter must never go back. Without a
        # traceback: the tap says why (busy, killed as hung, dead) in its own lines.
        self._failures += 1
        self._errors.error("states", "monitoring windows unavailable: %s", first_line(exc))
        tapped = [totals_of(state) for state in self._last_tapped]
    else:
        self._last_tapped = tapped
    tapped = [*tapped, *self._inherited]
    with self._lock:
        if close_interval:
            # Stamped, and the next one due, from when the interval closes, after the tap
            # answered: its first answer waits for the monitoring process to start (1-4 s).
            # From ``now``, read before, the first point was 1 ms long, and the next
            # evaluation, due at once, closed one of a few ms (CPU in 10 ms ticks: 308%).
            # The next is due at the next mark of the grid every worker keeps (``next_due``):
            # each on its own clock, the workers' intervals fell in different buckets of the
            # merged history, and the error rate judged one worker's share alone.
            closed = self.history.close_interval().t
            self._last_evaluation = next_due(closed, self.evaluate_seconds)
            # The round counts as begun at that mark too (``monitor_thread._last_round``):
            # begun a few ms after it, each round put the next that much later, off the grid.
            self._round_at = min(self._round_at, self._last_evaluation)
        self._labelled.clear()  # every version is reported on now
        # This process's labels and its tap's windows, taken once: published for the
        # siblings, and merged here with theirs.
        own = {key: monitor.state(now) for key, monitor in self._monitors.items()}
        others = list(tapped)
        if self.exchange is not None:
            others += gather(self)
        for state in others:
            if (state.model, state.version) not in self._monitors:
                self._monitor(self.registry.get_version(state.model, state.version))
        # The alerts that hold drift, taken once for both (on workers other than 0 it is the
        # book worker 0 last wrote).
        held = drift_held(self.keeper.state())
        _watch_held(self, held)
        report(self, now, own, tapped, others, list(self._monitors), held)


def _watch_held(self: Monitor, held: Mapping[tuple[str, str], Alert]) -> None:
    """Watch each served version whose drift alert holds, if nothing else had it watched:
    one taken over at a restart whose windows came back empty (its rows and labels aged out
    before), so that it has its report, holding the drift with the alert, from the first
    evaluation. Without, it had none until its next request: a 404 from /api/monitoring and
    no ``modelpilot_concept_drift`` series beside a firing alert, which the Prometheus rule
    on the gauge resolved at every restart. (A version no longer served is left: a server
    puts back no window of it, and its alert holds unjudged, ``RESTORED_UNJUDGED_SECONDS``.)
    """
    serving = self._serving() if self._engine is not None else None
    for _, label in held:
        model, _, number = label.rpartition(":")
        if not number.isdigit() or (model, int(number)) in self._monitors:
            continue
        if serving is not None and serving.get(model) != int(number):
            continue
        try:
            self._monitor(self.registry.get_version(model, int(number)))
        except NotFound:
            continue  # no longer in the registry: no report can hold its drift


def report(
    self: Monitor,
    now: float,
    own: dict[tuple[str, int], MonitorState],
    tapped: list[MonitorState],
    others: list[MonitorState],
    keys: Iterable[tuple[str, int]],
    held: Mapping[tuple[str, str], Alert] | None = None,
) -> None:
    """Report on the versions ``keys`` from this process's labels (``own``) and the
    windows of ``others`` (its tap's, ``tapped``, and the siblings'), then publish this
    worker's snapshot and update the alerts; under ``_lock``. ``held``: the alerts that hold
    drift (``drift_held``), if the caller has them."""
    by_key: dict[tuple[str, int], list[MonitorState]] = {}
    for state in others:
        by_key.setdefault((state.model, state.version), []).append(state)
    # A window too small to judge reports the drift its alert holds (over rows or labels that
    # aged out, a restart), so that the report, the gauges and the alert agree.
    if held is None:
        held = drift_held(self.keeper.state())
    for key in keys:
        try:
            monitor = self._monitors[key]
            peers, mine = by_key.get(key, ()), own.get(key)
            label = f"{key[0]}:{key[1]}"
            data = held.get(("data_drift", label))
            self._latest[key] = monitor.report(
                now,
                peers,
                mine,
                ("concept_drift", label) in held,
                HeldDrift(data.drifted, data.value) if data is not None else None,
            )
        except Exception as exc:
            # One version's bad data must not stop the others being watched. Logged once
            # a minute while it lasts: the report is made every evaluation, and a
            # traceback every two seconds buried the rest of the log.
            self._failures += 1
            self._errors.error(
                ("report", key),
                "monitoring report of %s:%d failed: %s",
                *key,
                first_line(exc),
                exc_info=True,
            )
    if self.exchange is not None:
        self.exchange.publish([*tapped, *own.values()], list(self.history.points))
    self.keeper.update(conditions(self, now) if self.keeper.decides else (), now)


def gather(self: Monitor) -> list[MonitorState]:
    """The siblings' states: the live ones' windows and totals, and the totals of workers
    gone whose successors do not carry them on yet (their windows are gone with them). Their
    service histories are kept for ``series``: the live ones', and the gone ones' to their
    last point (as the live carry their predecessors')."""
    assert self.exchange is not None
    gathered: list[MonitorState] = []
    points: list[list[ServicePoint]] = []
    ended: list[list[ServicePoint]] = [self.exchange.carried_points]
    live, gone = self.exchange.siblings()
    for peer in live:
        gathered.extend(peer.states)
        points.append(peer.points)
        ended.append(getattr(peer, "carried_points", []))
    for snapshot in gone:
        # Left out, the model's requests and rows went back by the dead worker's share (and
        # what it carried of its own predecessors') until its successor published.
        gathered.extend(totals_of(state) for state in snapshot.states)
        ended.append([*getattr(snapshot, "carried_points", []), *snapshot.points])
    self._peer_points = points
    self._ended_points = ended
    return gathered


def series(self: Monitor) -> list[ServicePoint]:
    """Service history of the whole server: this worker's points and its siblings', and
    those of the workers that died before them, until they age out."""
    return merge_points(
        list(self.history.points), self._peer_points, self.evaluate_seconds, self._ended_points
    )


def conditions(self: Monitor, now: float) -> list[Condition]:
    """What the alert rules judge now: the versions' reports, stalled rollouts, the
    service history within the rules' window, and the requests monitoring lost (the
    workers' too)."""
    horizon = now - self.rules.window_seconds
    window = [p for p in series(self) if p.t > horizon]
    stalled: Mapping[str, tuple[ModelVersion, str]] = {}
    serving: dict[str, int] | None = None  # not watching an engine: every version counts
    if self._engine is not None:
        stalled = self._engine.served.stalled
        serving = self._serving()
    min_labels = self.config.performance.min_labels
    active = list(self.alerts.active)
    return [
        *model_conditions(self._latest.values(), min_labels, serving),
        *rollout_conditions(stalled, active, serving),
        *service_conditions(window, self.rules),
        *version_error_conditions(window, self.rules, active, serving),
        *self.keeper.loss_conditions(now, self.dropped, self.unlogged),
    ]


def traffic(self: Monitor) -> dict[str, VersionTraffic]:
    """Each version's requests and server errors over the server's service history, and
    over the rules' window of it, by ``NAME:VERSION``."""
    horizon = time.time() - self.rules.window_seconds
    return version_traffic(series(self), horizon, self.rules.window_seconds)


def unwatched(
    self: Monitor, figures: Mapping[str, VersionTraffic] | None = None
) -> list[ModelReport]:
    """An empty report of each version that answered requests in the service history but has
    no report: one that failed every request, which the monitor never watched (it watches the
    answers). Its page then says how many failed, where it said "no traffic yet"."""
    reported = {f"{model}:{version}" for model, version in self._latest.copy()}
    reports = []
    for label in sorted(traffic(self) if figures is None else figures):
        model, _, version = label.rpartition(":")
        if label not in reported:
            reports.append(_empty_report(model, version))
    return reports


def _empty_report(model: str, version: str) -> ModelReport:
    return ModelReport(model, version, 0, 0, None, None, None, [])


def report_of(self: Monitor, model: str, version: int | None, serving: int | None) -> ModelReport:
    """The last report that answers for ``model`` (``Monitor.report``, which says which);
    NotFound, saying why, if there is none. A version that answered requests but has no report
    (it failed every one: the monitor watches answers) has an empty one (``unwatched``)."""
    # Without the lock, as ``Monitor.reports`` reads them: a report is replaced whole.
    latest = self._latest.copy()
    keys = [k for k in latest if k[0] == model]
    wanted = version if version is not None else serving
    if not keys or (wanted is not None and all(k[1] != wanted for k in keys)):
        unwatched = _unwatched_of(self, model, wanted)
        if unwatched is not None:
            return unwatched
    if version is None and serving is not None and keys:
        # Its requests' version, or none: another version's report would be read as the
        # serving one's (the newest was the one rolled back from, with its drift).
        version = serving
        if (model, serving) not in latest:
            raise NotFound(serving_unreported(self, model, serving, sorted(keys)))
    if version is not None:
        keys = [k for k in keys if k[1] == version]
    if not keys:
        subject = f"model {model!r}" + (f" version {version}" if version is not None else "")
        raise NotFound(f"no monitoring data for {subject} yet: {why_none(self, model, version)}")
    return latest[max(keys)]


def _unwatched_of(self: Monitor, model: str, version: int | None) -> ModelReport | None:
    """The empty report of ``model``'s ``version`` (its newest, if None) if the service history
    holds requests of it but the monitor has no report of it."""
    numbers = [
        int(number)
        for label in traffic(self)
        for name, _, number in [label.rpartition(":")]
        if name == model and (version is None or number == str(version))
    ]
    return _empty_report(model, str(max(numbers))) if numbers else None


def serving_unreported(
    self: Monitor, model: str, serving: int, reported: list[tuple[str, int]]
) -> str:
    """Why ``model``'s ``serving`` version has no report, and which of its versions have."""
    if self.restoring or not self._last_evaluation:
        why = why_none(self)
    else:  # an alias moved to it: its traffic comes at once, its report the next evaluation
        every = f"{self.evaluate_seconds:g} s"
        why = (
            "it has answered no requests since the server started, or its first report is "
            f"still to come (reports are made every {every})"
        )
    numbers = ", ".join(str(number) for _, number in reported)
    others = (
        f"version {numbers} has a report"
        if len(reported) == 1
        else f"versions {numbers} have reports"
    )
    return (
        f"no monitoring data for model {model!r} version {serving}, the version its requests "
        f"go to, yet: {why} (its {others})"
    )


def why_none(self: Monitor, model: str | None = None, version: int | None = None) -> str:
    """Why a model (``version``, if given) has no report, for the answer that says it has
    none."""
    if self.restoring:
        return (
            "the server is still putting its windows and labels back from the inference "
            "log, as it does when it starts (it answers requests meanwhile); the report "
            "shows once they are back"
        )
    if not self._last_evaluation:
        every = f"{self.evaluate_seconds:g} s"
        return f"its first report is still to come (reports are made every {every})"
    said = "it has answered no requests since the server started"
    if not self._from_log:
        return said
    serving = self._serving() if self._engine is not None else {}
    going = serving.get(model) if model is not None else None
    if self._engine is not None and version is not None and going != version:
        # Not restored, rather than absent from the log: a restarted server was said to have
        # found none of the requests of a version rolled away from, of which the log held 300
        # (and whose drift alert, kept, was firing).
        where = (
            f"{model}'s requests go to version {going}"
            if going is not None
            else f"this server does not serve {model}"
        )
        return (
            f"{said}, and it is not served ({where}): a server puts back from the inference "
            "log only the windows and labels of the versions it serves; "
            f"`modelpilot drift --model {model}:{version}` reads what the log holds of it"
        )
    return said + ", and the inference log held none of its recent requests or labels"
