"""Each model version's requests and server errors over the service history: the per-version
error-rate rule, the evidence both error-rate rules want, and the figures a model's page shows.

The server's error-rate rule judges all of its requests together: on a server of many models,
one that failed each of its requests at 2.4% of the server's traffic raised nothing, had no
report (the monitor reports on a version once it has answered a request) and its page said
"no traffic yet". Each version is judged apart here, as ``ModelPilotHighErrorRate`` in
deploy/monitoring judges each model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from modelpilot.monitoring.alerts import SEVERITY, AlertRules, Condition
from modelpilot.monitoring.history import ServicePoint, failing_in, served_in

EVIDENCE = 0.05
"""How unlikely the failures must be at the threshold's rate for an error-rate rule to hold: a
window's share over the threshold holds only where a rate of the threshold would fail as many
of its requests less often than this (a one-sided binomial test's p-value). The share alone
fired on noise: 3 failures of 43 requests (7%), the tail of a steady 2.4% as it aged out of
the window, are as many as 5% gives more than one time in three. At 5%: 2 failures of 2 to 7
requests are evidence, 4 of 20, 10 of 100, 63 of 1,000 (6.3%); one failure never is."""


@dataclass(frozen=True, slots=True)
class VersionTraffic:
    """One version's requests and server errors (5xx) over the service history, and over the
    last ``window_seconds`` of it (what the error-rate rule judges), as its page shows them."""

    seconds: float
    """The span of the service history the figures cover (the charts')."""
    requests: int
    server_errors: int
    window_seconds: float
    window_requests: int
    window_server_errors: int

    def to_dict(self) -> dict[str, float]:
        return {
            "seconds": self.seconds,
            "requests": self.requests,
            "server_errors": self.server_errors,
            "window_seconds": self.window_seconds,
            "window_requests": self.window_requests,
            "window_server_errors": self.window_server_errors,
        }


def version_traffic(
    series: Sequence[ServicePoint], horizon: float, window_seconds: float
) -> dict[str, VersionTraffic]:
    """Each version's (``NAME:VERSION``) figures over ``series``, the server's service
    history, and over its points after ``horizon`` (the rules' window)."""
    if not series:
        return {}
    window = [p for p in series if p.t > horizon]
    served, failing = dict(served_in(series)), dict(failing_in(series))
    recent, recent_failing = dict(served_in(window)), dict(failing_in(window))
    seconds = series[-1].t - series[0].t + series[0].seconds
    return {
        label: VersionTraffic(
            seconds,
            requests,
            failing.get(label, 0),
            window_seconds,
            recent.get(label, 0),
            recent_failing.get(label, 0),
        )
        for label, requests in served.items()
    }


def excess_chance(errors: int, requests: int, threshold: float) -> float:
    """The chance that ``requests`` requests, each failing at the rate ``threshold``, fail
    ``errors`` times or more (a one-sided binomial test's p-value)."""
    if errors <= 0:
        return 1.0
    if errors > requests:
        return 0.0
    from scipy import special  # imported when first needed: the core imports fast

    # P(X >= k) of X ~ Binomial(n, p) is the regularized incomplete beta I_p(k, n - k + 1).
    return float(special.betainc(errors, requests - errors + 1, threshold))


def clearly_over(errors: int, requests: int, threshold: float) -> bool:
    """Whether ``errors`` of ``requests`` are a rate over ``threshold`` beyond chance
    (``EVIDENCE``)."""
    return (
        requests > 0
        and errors / requests > threshold
        and excess_chance(errors, requests, threshold) < EVIDENCE
    )


def evidence_said(errors: int, requests: int, threshold: float) -> str:
    """How likely the failures are at the threshold's rate, in words, for a rule's message."""
    chance = excess_chance(errors, requests, threshold)
    figure = "< 0.0001" if chance < 0.0001 else f"= {chance:.2g}"
    return f"; p {figure} that a {threshold:.1%} rate fails as many (holds under p {EVIDENCE:g})"


def version_error_conditions(
    window: Sequence[ServicePoint],
    rules: AlertRules,
    active: Iterable[tuple[str, str]] = (),
    serving: Mapping[str, int] | None = None,
) -> list[Condition]:
    """The error rate of each model version with requests in ``window`` (rule ``error_rate``,
    model ``NAME:VERSION``), judged on ``rules.model_min_requests`` of its requests, and
    holding on evidence (``clearly_over``).

    A window of one version's requests alone judges none: they are the server's, which its
    own rule judges (model ""), and a second alert would page twice for one failure. The
    ``active`` alerts (rule, model) of versions are judged whatever the window holds, so that
    they hold or resolve; one of a version no longer served (``serving``: the version each
    model's requests go to; None counts every version as served) resolves once too few of its
    requests are left to judge, as no request will judge it again."""
    served, failing = dict(served_in(window)), dict(failing_in(window))
    firing = {label for rule, label in active if rule == "error_rate" and label}
    labels = set(served) | firing if len(served) > 1 else firing
    minimum = rules.model_min_requests
    last = f"the last {rules.window_seconds:.0f} s"
    conditions = []
    for label in sorted(labels):
        requests, errors = served.get(label, 0), failing.get(label, 0)
        rate = errors / requests if requests else 0.0
        judged = requests >= minimum
        if judged:
            said = (
                f"{label} failed {errors} of {requests} requests on the server (5xx) in "
                f"{last}, {rate:.1%} (threshold {rules.error_rate:.1%}, judged from "
                f"{minimum} requests of a version)"
                + evidence_said(errors, requests, rules.error_rate)
            )
        else:
            said = (
                f"{requests} requests to {label} in {last}, fewer than the {minimum} a "
                "version is judged from"
            )
            if requests:
                said += f" ({rate:.1%} failed, 5xx)"
            said += f": too few to judge{_left(label, serving)}"
        conditions.append(
            Condition(
                "error_rate",
                label,
                judged and clearly_over(errors, requests, rules.error_rate),
                SEVERITY["error_rate"],
                said,
                rate,
                judged or bool(_left(label, serving)),
            )
        )
    return conditions


def _left(label: str, serving: Mapping[str, int] | None) -> str:
    """Why no request will judge the version ``label`` again, in words; "" while served."""
    if serving is None:
        return ""
    model, _, version = label.rpartition(":")
    now = serving.get(model)
    if now is None:
        return f" ({model} is no longer served)"
    if str(now) != version:
        return f" ({model}'s requests go to version {now} now)"
    return ""
