"""The alert rules: from each round's reports and service history to the verdicts
(``Condition``) that the alert book (``alerts.AlertBook``) fires and resolves alerts on.

- ``model_conditions``: data drift and concept drift of each watched version;
- ``rollout_conditions``: an alias moved to a version that did not load;
- ``service_conditions``: the server's error rate and p99 latency over the last minute (each
  model version's error rate: ``version_errors``);
- ``loss_conditions``: requests that monitoring lost over the last two minutes.

A rule that has too little to judge from says so (``Condition.judged``), which changes no
alert: its message says why, with the figures it did not judge on, and the alert book says
what that does to the alert (one that fires holds; one taken over at a restart resolves in
time). Said here, "an alert neither fires nor resolves" ended the message of an alert that
resolved for want of a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from modelpilot.monitoring.alerts import (
    SEVERITY,
    WAITS_TO_FIRE,
    Alert,
    AlertRules,
    AlertState,
    Condition,
)
from modelpilot.monitoring.history import ServicePoint, failing_in, slower_than, window_quantile
from modelpilot.monitoring.loss_history import LossWindow
from modelpilot.monitoring.model_monitor import ModelReport
from modelpilot.monitoring.performance import PerformanceReport
from modelpilot.monitoring.version_errors import clearly_over, evidence_said
from modelpilot.registry.types import ModelVersion


def model_conditions(
    reports: Iterable[ModelReport],
    min_labels: int = 30,
    serving: Mapping[str, int] | None = None,
) -> list[Condition]:
    """Each version's data drift (a warning, dataset drift or not) and concept drift
    (critical).

    A window that gives no verdict (too few rows; fewer than ``min_labels`` labels scored,
    or none to judge against: ``PerformanceReport.judged``) judges nothing, so that a firing
    alert holds, as the service rules' do on too few requests: a worker restarted after a
    crash starts with an empty share of the windows, and the drift alert it carried on was
    announced resolved, "no drift", a minute later, for a window that held no row. (Its
    report then says that the drift holds, with the alert: ``drift_held``; a report that holds
    the drift is no verdict either.) Except for a version its model no longer serves
    (``serving``: the version each model's requests go to; None counts every version as
    served): no request will judge it again, so its alerts resolve once its window is too
    small to judge (its rows age out), saying so."""
    conditions = []
    for report in reports:
        label = f"{report.model}:{report.version}"
        left = _left(report, serving)
        drift = report.drift
        judged = drift is not None and drift.judged
        # (Features a window that cannot judge holds drifted are no verdict: not what holds.)
        drifted = drift.drifted_features if drift is not None and judged else []
        if drift is not None and drifted:
            said = f"{len(drifted)} of {len(drift.features)} features drifted: {', '.join(drifted)}"
        elif judged:
            said = "no drift"
        else:
            said = drift.verdict if drift is not None else "no reference profile to judge by"
            said += left
        conditions.append(
            Condition(
                "data_drift",
                label,
                bool(drifted),
                SEVERITY["data_drift"],
                said,
                drift.drifted_share if drift else 0.0,
                judged or bool(left),
                tuple(drifted),
            )
        )
        performance = report.performance
        scored = performance.labels - performance.unscored if performance else 0
        judged = performance is not None and performance.judged and scored >= min_labels
        # A drift judged, or held over a window that cannot judge, says why in its reason; a
        # version no longer served resolves on why its window cannot judge.
        concept = performance is not None and performance.concept_drift and (judged or not left)
        said = performance.reason if concept and performance else _performance_said(performance)
        if not judged:
            if performance and performance.labels and not concept:
                if scored < min_labels:
                    said += f", fewer than the {min_labels} judged from"
                else:  # nothing to judge them against
                    said += f"; {performance.unjudged}"
            said += left
        conditions.append(
            Condition(
                "concept_drift",
                label,
                judged and report.concept_drift,
                SEVERITY["concept_drift"],
                said,
                float(len(performance.degraded)) if performance else 0.0,
                judged or bool(left),
            )
        )
    return conditions


def drift_held(state: AlertState) -> dict[tuple[str, str], Alert]:
    """The drift alerts (data_drift, concept_drift) of the alert book ``state`` that hold, by
    rule and version (``NAME:VERSION``): those that fire and have not stopped holding
    (``clearing``). What a window too small to judge reports as its drift (concept drift:
    ``PerformanceWindow.report``'s ``held``; data drift: ``drift_results.holding``), so that
    the report, its gauges and the alert tell one story: a window whose labels aged out read
    "no concept drift", and an emptied drift window "not drifted", while the alert, as meant,
    held.

    Not those that wait to fire (``pending``): a window that cannot judge starts their wait
    over (``AlertBook.update``), and holding them, the report said concept drift where the
    alert book, an evaluation later, had none."""
    return {
        a.key: a for a in state.active if a.rule in WAITS_TO_FIRE and a.key not in state.clearing
    }


def _left(report: ModelReport, serving: Mapping[str, int] | None) -> str:
    """Why no request will judge ``report``'s version again (its model's requests go to
    another version, or to none), in words; "" while it is served."""
    if serving is None:
        return ""
    now = serving.get(report.model)
    if now is None:
        return f" ({report.model} is no longer served)"
    if str(now) != report.version:
        return f" ({report.model}'s requests go to version {now} now)"
    return ""


def _performance_said(performance: PerformanceReport | None) -> str:
    """The version's quality figures (which a resolved alert is announced with, not the
    reason it fired)."""
    if performance is None or not performance.labels:
        return "no labels in the window"
    figures = [
        f"{metric} {value:.4g}"
        + (
            f" against {performance.reference[metric]:.4g}"
            if metric in performance.reference
            else ""
        )
        for metric, value in performance.current.items()
    ]
    return f"{', '.join(figures) or 'no figures'} over {performance.labels} labels"


def rollout_conditions(
    stalled: Mapping[str, tuple[ModelVersion, str]],
    active: Iterable[tuple[str, str]],
    serving: Mapping[str, int] | None = None,
) -> list[Condition]:
    """A version that a model's reference moved to but that fails to load (``stalled``, by
    model): its requests still go to the version before, which only the logs said. Those of
    the ``active`` alerts (rule, model) that no longer stall resolve, saying why, by the
    version each model serves now (``serving``): it loaded, or the reference moved away from
    it (every resolution said "loaded", and a build that never loaded read as fixed)."""
    conditions = [
        Condition(
            "rollout_stalled",
            f"{model}:{version.version}",
            True,
            SEVERITY["rollout_stalled"],
            f"{model} stays on its previous version: {reason}",
            1.0,
        )
        for model, (version, reason) in stalled.items()
    ]
    held = {c.model for c in conditions}
    for rule, label in active:
        if rule == "rollout_stalled" and label not in held:
            model, _, version = label.rpartition(":")
            now = (serving or {}).get(model)
            if now is None or str(now) == version:
                said = "loaded"
            else:
                said = f"not loaded, but no longer wanted: {model} serves version {now}"
            conditions.append(Condition(rule, label, False, SEVERITY[rule], said, 0.0))
    return conditions


def service_conditions(window: Sequence[ServicePoint], rules: AlertRules) -> list[Condition]:
    """The error rate and the p99 latency over ``window``, the service history's last
    ``rules.window_seconds``; judged only on ``rules.min_requests`` requests. The error rate
    holds on evidence (``version_errors.clearly_over``), not on its share alone."""
    requests = sum(p.requests for p in window)
    # The server's failures only: clients sending bad input, or asking for models that do
    # not exist, show on the dashboard and in the metrics, but are not an outage.
    errors = sum(p.server_errors for p in window)
    rate = errors / requests if requests else 0.0
    # Split at the threshold, the p99 is over it exactly when more than 1% of the requests
    # took longer (see ``window_quantile``).
    threshold = rules.latency_p99_seconds
    p99 = window_quantile(window, 0.99, bound=threshold)
    # Both judged only on enough requests: one slow request of an idle minute is its p99.
    judged = requests >= rules.min_requests
    last = f"the last {rules.window_seconds:.0f} s"
    return [
        Condition(
            "error_rate",
            "",
            judged and clearly_over(errors, requests, rules.error_rate),
            SEVERITY["error_rate"],
            f"{rate:.1%} of {requests} requests failed on the server (5xx) in {last} "
            f"(threshold {rules.error_rate:.1%}, judged from {rules.min_requests} requests)"
            f"{evidence_said(errors, requests, rules.error_rate)}{_failing(window)}"
            if judged
            else _too_few(requests, last, rules.min_requests, f"{rate:.1%} failed, 5xx"),
            rate,
            judged,
        ),
        Condition(
            "latency",
            "",
            judged and p99 > threshold,
            SEVERITY["latency"],
            f"p99 latency {p99 * 1000:.1f} ms over {last} "
            f"(threshold {_milliseconds(threshold)} ms{_slower(window, threshold, requests)})"
            if judged
            else _too_few(requests, last, rules.min_requests, f"p99 {p99 * 1000:.1f} ms"),
            p99,
            judged,
        ),
    ]


def _milliseconds(seconds: float) -> str:
    """A threshold in milliseconds as it was set: 0.0001 s is "0.1", not "0"."""
    ms = seconds * 1000
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"


def _too_few(requests: int, last: str, minimum: int, figures: str) -> str:
    """Why a service rule did not judge, with the figures it did not judge on."""
    seen = f"{requests} requests in {last}, fewer than the {minimum} it is judged from"
    if requests:
        seen += f" ({figures})"
    return f"{seen}: too few to judge"


def _slower(window: Sequence[ServicePoint], threshold: float, requests: int) -> str:
    """How many requests took longer than the latency threshold, which says on which side of
    it the p99 is (over it when more than 1% did), where the window counted them; the p99
    itself is read off latency buckets, within the one it falls in (a third wider than the
    one below)."""
    slower = slower_than(window, threshold)
    if slower is None:
        return ""
    return f"; {slower} of {requests} requests, {slower / requests:.1%}, took longer"


def _failing(window: Sequence[ServicePoint]) -> str:
    """Which model versions the server errors of ``window`` came from, the three with the
    most: the rule is the whole server's (``model`` ""), and an on-call engineer's first
    question is which model fails."""
    failing = failing_in(window)
    if not failing:
        return ""
    named = ", ".join(f"{name} {count}" for name, count in failing[:3])
    more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
    return f"; failed: {named}{more}"


LOSS_WINDOW_SECONDS = 120.0
"""How far back ``loss_conditions`` looks for requests lost: deploy/monitoring's
``ModelPilotMonitoringLosing`` looks at ``rate(...[2m])``. Longer than the longest wait
between two monitoring processes that keep dying (``tap_restarts.MAX_RESTART_SECONDS``, 30 s),
so that a replacement loop under traffic holds the rule at every evaluation."""


def loss_conditions(window: LossWindow, rules: AlertRules) -> list[Condition]:
    """Whether monitoring lost requests (left them unmonitored, or unwritten to the inference
    log) over ``window``, the last ``LOSS_WINDOW_SECONDS``: the alert fires once it has held
    for ``rules.loss_for_seconds``, so that one monitoring process replaced, whose losses
    hold the rule for ``LOSS_WINDOW_SECONDS``, fires nothing. A history shorter than the
    window that lost nothing does not judge (a server that just started, or a worker 0 started
    in place of one that died: a firing alert holds)."""
    lost = window.lost
    last = f"the last {window.seconds:.0f} s"
    if lost.total:
        parts = []
        if lost.dropped:
            parts.append(f"{lost.dropped:.0f} left unmonitored (modelpilot_monitor_dropped_total)")
        if lost.unlogged:
            parts.append(
                f"{lost.unlogged:.0f} never written to the inference log "
                "(modelpilot_monitor_unlogged_total)"
            )
        said = f"{lost.total:.0f} answered requests lost to monitoring in {last}: " + (
            " and ".join(parts)
        )
        if window.workers:
            said += "; by worker: " + ", ".join(
                f"{worker} {by.total:.0f}" for worker, by in sorted(window.by_worker.items())
            )
        said += "; the server's log says why (modelpilot.monitoring)"
    elif window.covered:
        said = f"no requests lost to monitoring in {last}"
    else:
        said = (
            f"no requests lost to monitoring in {last} watched, fewer than the "
            f"{LOSS_WINDOW_SECONDS:.0f} s it is judged over: too few to judge"
        )
    per_minute = lost.total * 60 / LOSS_WINDOW_SECONDS
    return [
        Condition(
            "monitoring_losing",
            "",
            bool(lost.total),
            SEVERITY["monitoring_losing"],
            said,
            per_minute,
            bool(lost.total) or window.covered,
        )
    ]
