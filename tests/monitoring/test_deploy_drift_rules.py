"""The drift rules hold a fired alert across a restart and a killed worker, and page once per
incident, however many servers of one registry hold the verdict.

A tester's real Prometheus saw a server restart (its series gone some 35 s) resolve a firing
ModelPilotConceptDrift, Alertmanager told "resolved" mid-incident, and the alert come back only
after its 10-minute ``for:`` again; a ``kill -9`` of one worker did the same by turning the
verdict to 0 for a while; and two servers on one registry, which judge concept drift on the
same labels, paged twice for one degradation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.promtool_rules import gauge, run_rule_tests

DRIFT_RULES = {  # each model-level rule, the gauge it reads, and the labels its alert keeps
    "ModelPilotDataDrift": ("modelpilot_dataset_drift", {}),
    "ModelPilotFeatureDrift": ("modelpilot_feature_drifted", {"feature": "f0"}),
    "ModelPilotConceptDrift": ("modelpilot_concept_drift", {}),
}
SEVERITY = {
    "ModelPilotDataDrift": "warning",
    "ModelPilotFeatureDrift": "warning",
    "ModelPilotConceptDrift": "critical",
}


def verdict(
    rule: str, instance: str | None, *stretches: tuple[float, float | None]
) -> dict[str, str]:
    """The series of ``rule``'s gauge for model iris v1 as one server exports it; without an
    instance, so that the labels of the alert are the same whether a rule keeps the instance
    or not (a restart test that fails only on the restart)."""
    metric, extra = DRIFT_RULES[rule]
    labels = {"model": "iris", "version": "1", **extra}
    if instance is not None:
        labels["instance"] = instance
    inner = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": gauge(*stretches)}


def firing(rule: str, *times: str, expected: bool = True) -> list[dict[str, Any]]:
    _, extra = DRIFT_RULES[rule]
    labels = {"model": "iris", "version": "1", "severity": SEVERITY[rule], **extra}
    alerts = [{"exp_labels": labels}] if expected else []
    return [{"eval_time": at, "alertname": rule, "exp_alerts": alerts} for at in times]


@pytest.mark.parametrize("rule", sorted(DRIFT_RULES))
def test_a_restart_keeps_a_firing_drift_alert(tmp_path: Path, rule: str) -> None:
    """The verdict holds for 20 minutes (the alert fired), the server restarts (a minute
    without series: stopping, then loading its models) and holds it again from its first
    scrape, as the server's own alert book does: the alert fires throughout."""
    case = {
        "input_series": [verdict(rule, None, (20, 1), (1, None), (10, 1))],
        "alert_rule_test": firing(rule, "19m45s", "20m15s", "20m45s", "21m15s", "25m", "30m"),
    }
    run_rule_tests(tmp_path, [case])


def test_a_restart_in_the_wait_does_not_start_it_over(tmp_path: Path) -> None:
    """Concept drift from 0:00, a restart at 5:00 for a minute: the alert fires at 10:00, when
    the verdict has held for its 10 minutes, not at 16:00, ten minutes after the restart."""
    rule = "ModelPilotConceptDrift"
    case = {
        "input_series": [verdict(rule, None, (5, 1), (1, None), (15, 1))],
        "alert_rule_test": [
            *firing(rule, "9m30s", expected=False),
            *firing(rule, "10m15s", "12m", "16m"),
        ],
    }
    run_rule_tests(tmp_path, [case])


@pytest.mark.parametrize("rule", sorted(DRIFT_RULES))
def test_a_killed_worker_does_not_resolve_a_firing_drift_alert(tmp_path: Path, rule: str) -> None:
    """``kill -9`` of the worker whose window held the drift: the verdict of the workers left
    reads 0 until the replaced worker's window shows the drift again (three minutes here)."""
    case = {
        "input_series": [verdict(rule, None, (20, 1), (3, 0), (10, 1))],
        "alert_rule_test": firing(rule, "20m15s", "21m", "22m", "22m45s", "23m30s", "30m"),
    }
    run_rule_tests(tmp_path, [case])


@pytest.mark.parametrize("rule", sorted(DRIFT_RULES))
def test_a_cleared_verdict_resolves_the_alert_within_seven_minutes(
    tmp_path: Path, rule: str
) -> None:
    """What holding across gaps costs: the verdict clears at 20:00, the alert resolves at
    26:45, two minutes of verdicts looked back over and five of keep_firing_for later."""
    case = {
        "input_series": [verdict(rule, None, (20, 1), (15, 0))],
        "alert_rule_test": [
            *firing(rule, "21m", "26m30s"),
            *firing(rule, "27m", "30m", expected=False),
        ],
    }
    run_rule_tests(tmp_path, [case])


@pytest.mark.parametrize("rule", sorted(DRIFT_RULES))
def test_one_incident_on_several_servers_is_one_alert(tmp_path: Path, rule: str) -> None:
    """Two servers of one registry hold the verdict (concept drift judged on the labels they
    share; data drift on the traffic a load balancer spreads over both): one alert, without
    an instance, which holds while either server does and names those that do (none, in the
    minutes it is kept firing after both cleared)."""
    case = {
        "input_series": [
            verdict(rule, "a:8000", (30, 1), (10, 0)),
            verdict(rule, "b:8000", (20, 1), (20, 0)),
        ],
        "alert_rule_test": firing(rule, "19m45s", "25m", "30m"),
    }
    run_rule_tests(tmp_path, [case])
    summary = {
        "ModelPilotDataDrift": "Dataset drift on model iris v1",
        "ModelPilotFeatureDrift": "Feature f0 of model iris v1 differs from the reference",
        "ModelPilotConceptDrift": "Concept drift on model iris v1",
    }[rule]
    (named,) = firing(rule, "19m45s")
    named["exp_alerts"][0]["exp_annotations"] = {"summary": f"{summary} (a:8000, b:8000)"}
    (one,) = firing(rule, "25m")
    one["exp_alerts"][0]["exp_annotations"] = {"summary": f"{summary} (a:8000)"}
    (held,) = firing(rule, "33m")  # both cleared at 30:00; the alert is kept five minutes
    held["exp_alerts"][0]["exp_annotations"] = {"summary": f"{summary} (no server holds it now)"}
    case["alert_rule_test"] = [named, one, held]
    run_rule_tests(tmp_path, [case], annotations=("summary",))
