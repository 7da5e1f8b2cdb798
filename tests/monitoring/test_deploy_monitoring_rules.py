"""ModelPilotMonitoringLosing and ModelPilotMonitoringFailing page when monitoring itself keeps
failing, which no rule did: the monitoring process dying, killed as hung or replaced in a loop,
the monitor falling behind, or the inference log out of reach, while the server answered on and
no other rule fired. One monitoring process killed once (77 requests dropped, one evaluation
failed, in a test under traffic) pages nobody, nor does a healthy server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.promtool_rules import DEPLOY, counter, run_rule_tests

FAMILIES = {  # what the monitoring rules read, and the rule (and reason) each fires
    "modelpilot_monitor_dropped_total": ("ModelPilotMonitoringLosing", "unmonitored"),
    "modelpilot_monitor_unlogged_total": ("ModelPilotMonitoringLosing", "unlogged"),
    "modelpilot_monitor_failures_total": ("ModelPilotMonitoringFailing", None),
}
BLIP = ((10, 0), (0.25, 308), (20, 0))
"""A monitoring process killed once at 10:00: 77 requests lost in one scrape, then none."""


def figure(family: str, worker: str, *stretches: tuple[float, float]) -> dict[str, str]:
    """One worker's series of ``family``, as a server at ``a:8000`` exports it."""
    return {
        "series": f'{family}{{instance="a:8000", job="modelpilot", worker="{worker}"}}',
        "values": counter(*stretches),
    }


def alerts(family: str, *times: str, expected: bool = True) -> list[dict[str, Any]]:
    rule, reason = FAMILIES[family]
    labels = {"instance": "a:8000", "severity": "warning"}
    if reason is not None:
        labels["reason"] = reason
    fired = [{"exp_labels": labels}] if expected else []
    return [{"eval_time": at, "alertname": rule, "exp_alerts": fired} for at in times]


def monitoring_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    (group,) = [g for g in rules["groups"] if g["name"] == "modelpilot.monitoring"]
    rules_of_group: list[dict[str, Any]] = group["rules"]
    return rules_of_group


def test_requests_left_unmonitored_for_five_minutes_page(tmp_path: Path) -> None:
    """A monitoring process that dies at every start, on a busy server: every request answered
    while none runs is dropped, from 10:00 on. The page comes some five minutes later, names
    the instance (the two workers added up) and says why."""
    family = "modelpilot_monitor_dropped_total"
    case = {
        "input_series": [
            figure(family, "0", (10, 0), (20, 120)),
            figure(family, "1", (30, 0)),
        ],
        "alert_rule_test": [
            *alerts(family, "9m45s", "14m30s", expected=False),
            *alerts(family, "15m30s", "20m"),
        ],
    }
    run_rule_tests(tmp_path, [case])
    (said,) = alerts(family, "20m")
    said["exp_alerts"][0]["exp_annotations"] = {
        "summary": "ModelPilot at a:8000 is leaving answered requests unmonitored (120 a "
        'minute): see the server\'s log and the README, "Watching it"'
    }
    case["alert_rule_test"] = [said]
    run_rule_tests(tmp_path, [case], annotations=("summary",))


def test_requests_the_inference_log_never_got_page(tmp_path: Path) -> None:
    """The inference log's database is down from 9:00; a minute later the requests kept for
    retry start to be counted as unlogged, on both workers. The page comes five minutes after
    that, and leaves two minutes after the database came back (at 25:00)."""
    family = "modelpilot_monitor_unlogged_total"
    case = {
        "input_series": [
            figure(family, worker, (10, 0), (15, 60), (10, 0)) for worker in ("0", "1")
        ],
        "alert_rule_test": [
            *alerts(family, "14m", expected=False),
            *alerts(family, "15m30s", "24m"),
            *alerts(family, "27m30s", "33m", expected=False),
        ],
    }
    run_rule_tests(tmp_path, [case])


def test_monitoring_failing_for_ten_minutes_pages(tmp_path: Path) -> None:
    """Every evaluation fails from 10:00 (a monitoring process in its replacement loop on an
    idle server: it drops nothing, so only this rule fires)."""
    family = "modelpilot_monitor_failures_total"
    case = {
        "input_series": [
            figure(family, "0", (10, 0), (20, 30)),
            figure("modelpilot_monitor_dropped_total", "0", (30, 0)),
        ],
        "alert_rule_test": [
            *alerts(family, "19m30s", expected=False),
            *alerts(family, "20m30s", "25m"),
            *alerts("modelpilot_monitor_dropped_total", "25m", expected=False),
        ],
    }
    run_rule_tests(tmp_path, [case])


def test_a_monitoring_process_killed_now_and_then_pages(tmp_path: Path) -> None:
    """A monitoring process killed as hung every four minutes: one failed evaluation each time,
    never two minutes in a row, yet monitoring keeps failing. (Every four minutes, each time
    a minute's requests dropped with it, is a loss to page about as well.)"""
    family = "modelpilot_monitor_failures_total"
    kills = [(10, 0)] + [(0.25, 4), (3.75, 0)] * 6
    case = {
        "input_series": [figure(family, "0", *kills)],
        "alert_rule_test": [
            *alerts(family, "19m30s", expected=False),
            *alerts(family, "21m", "30m"),
        ],
    }
    run_rule_tests(tmp_path, [case])


def test_one_monitoring_process_killed_once_pages_nobody(tmp_path: Path) -> None:
    """``kill -9`` of a monitoring process under traffic: 77 requests dropped and an evaluation
    failed in one scrape, then all was well. Neither rule fires, then or later."""
    series = [
        figure("modelpilot_monitor_dropped_total", "0", *BLIP),
        figure("modelpilot_monitor_unlogged_total", "0", *BLIP),
        figure("modelpilot_monitor_failures_total", "0", (10, 0), (0.25, 4), (20, 0)),
    ]
    times = ("10m30s", "12m", "14m", "15m", "16m", "20m", "25m")
    tests = [at for family in FAMILIES for at in alerts(family, *times, expected=False)]
    run_rule_tests(tmp_path, [{"input_series": series, "alert_rule_test": tests}])


def test_a_healthy_server_and_its_restart_page_nobody(tmp_path: Path) -> None:
    """Counters that stand still (at what past incidents left), then start again from 0 when
    the server restarts at 10:00: no loss, no alert."""
    series = [
        {
            "series": f'{family}{{instance="a:8000", job="modelpilot", worker="0"}}',
            "values": "500x40 0x80",
        }
        for family in FAMILIES
    ]
    times = ("5m", "10m15s", "12m", "16m", "25m", "30m")
    tests = [at for family in FAMILIES for at in alerts(family, *times, expected=False)]
    run_rule_tests(tmp_path, [{"input_series": series, "alert_rule_test": tests}])


def test_the_pages_say_what_to_do() -> None:
    """Each names the instance, points at the server's log and the docs, and is a warning:
    serving goes on, and ModelPilotDown and the error rate rules page for the service."""
    rules = monitoring_rules()
    assert {(r["alert"], r["labels"].get("reason")) for r in rules} == set(FAMILIES.values())
    for rule in rules:
        family = next(name for name in FAMILIES if name in rule["expr"])
        assert rule["expr"].startswith(f"sum by (instance) (rate({family}[")
        assert rule["labels"]["severity"] == "warning"
        summary = " ".join(rule["annotations"]["summary"].split())
        assert "{{ $labels.instance }}" in summary
        assert "the server's log" in summary and 'README, "Watching it"' in summary
        assert family in rule["annotations"]["description"]
        assert 'docs/metrics.md, "Monitoring itself"' in rule["annotations"]["runbook"]


def test_the_dashboard_draws_what_the_monitoring_rules_page_on() -> None:
    """The panel of unmonitored requests drew dropped requests and failed rounds (not requests)
    on one requests-a-second axis, and never the requests the inference log lost: a page of
    ModelPilotMonitoringLosing for them had no panel to look at."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    drawn = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            for family in FAMILIES:
                if family in target["expr"]:
                    drawn[family] = (panel, target)
    assert set(drawn) == set(FAMILIES)
    for family, (panel, target) in drawn.items():
        assert target["expr"].startswith(f"sum by (instance) (rate({family}[")
        assert "{{instance}}" in target["legendFormat"]
        unit = panel["fieldConfig"]["defaults"]["unit"]
        assert (unit == "reqps") == (family != "modelpilot_monitor_failures_total"), panel["title"]
        assert family in panel["description"]
