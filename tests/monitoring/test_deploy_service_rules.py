"""ModelPilotHighErrorRate and ModelPilotHighLatencyP99 judge what the server's error_rate and
latency alerts judge: the last minute, paged at once, on at least 20 requests a minute of the
whole service, and a model of few requests once more than one of them a minute went wrong.

They judged five minutes (``[5m]``) and waited five more (``for: 5m``): a one-minute burst of
failures, which the server paged at once and resolved a minute after it ended, fired the
Prometheus rule four minutes after its end. And they wanted 20 requests a minute of each model:
a model that failed each of its 15 requests a minute, among busy ones, fired the server's alert
and never the rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.monitoring.promtool_rules import counter, run_rule_tests

BUSY = 180  # requests a minute of a healthy model beside the one on trial (the tester's iris)


def requests(model: str, status: str, *stretches: tuple[float, float]) -> dict[str, str]:
    return {
        "series": f'modelpilot_requests_total{{model="{model}", status="{status}"}}',
        "values": counter(*stretches),
    }


def latencies(model: str, *stretches: tuple[float, float, float]) -> list[dict[str, str]]:
    """The bucket and count series of requests to ``model``: ``(minutes, per_minute,
    seconds)`` stretch after stretch, each request of a stretch taking ``seconds``; buckets
    of the bounds around the threshold, as the server exports them."""
    series = []
    for le in ("0.25", "0.5", "0.75", "1.5", "+Inf"):
        counted = [
            (minutes, per_minute if le == "+Inf" or seconds <= float(le) else 0)
            for minutes, per_minute, seconds in stretches
        ]
        series.append(
            {
                "series": f'modelpilot_request_duration_seconds_bucket{{model="{model}", '
                f'le="{le}"}}',
                "values": counter(*counted),
            }
        )
    series.append(
        {
            "series": f'modelpilot_request_duration_seconds_count{{model="{model}"}}',
            "values": counter(*((minutes, per_minute) for minutes, per_minute, _ in stretches)),
        }
    )
    return series


def fired(alert: str, at: str, model: str | None, severity: str) -> dict[str, Any]:
    expected = [] if model is None else [{"exp_labels": {"model": model, "severity": severity}}]
    return {"eval_time": at, "alertname": alert, "exp_alerts": expected}


def test_a_one_minute_burst_of_failures_pages_while_it_lasts(tmp_path: Path) -> None:
    """Half of a minute's requests fail from 10:00 to 11:00: the page comes at 10:30, not at
    15:00, and is gone by 12:30, a minute and a half after the last failure."""
    case = {
        "input_series": [
            requests("slow", "ok", (25, 100)),
            requests("slow", "500", (10, 0), (1, 100), (14, 0)),
        ],
        "alert_rule_test": [
            fired("ModelPilotHighErrorRate", "9m45s", None, "critical"),
            fired("ModelPilotHighErrorRate", "10m30s", "slow", "critical"),
            fired("ModelPilotHighErrorRate", "11m", "slow", "critical"),
            fired("ModelPilotHighErrorRate", "12m30s", None, "critical"),
            fired("ModelPilotHighErrorRate", "15m30s", None, "critical"),
        ],
    }
    run_rule_tests(tmp_path, [case])


def test_a_model_of_few_requests_that_fails_them_all_pages(tmp_path: Path) -> None:
    """The tester's ``tiny``: 15 requests a minute, every one a 500, beside a busy model."""
    case = {
        "input_series": [
            requests("iris", "ok", (20, BUSY)),
            requests("tiny", "ok", (20, 0)),
            requests("tiny", "500", (20, 15)),
        ],
        "alert_rule_test": [fired("ModelPilotHighErrorRate", "10m", "tiny", "critical")],
    }
    run_rule_tests(tmp_path, [case])


def test_one_failure_of_an_idle_model_pages_nobody(tmp_path: Path) -> None:
    """One request to a model in ten minutes, and it failed: 100% of its requests, beside a
    busy model. The server's alert (1 of 181) would not fire; nor does the rule."""
    lone = requests("rare", "500", (10, 0), (0.25, 4), (10, 0))  # one failure at 10:15
    busy = requests("iris", "ok", (21, BUSY))
    tests = [fired("ModelPilotHighErrorRate", at, None, "critical") for at in ("10m30s", "11m")]
    run_rule_tests(tmp_path, [{"input_series": [busy, lone], "alert_rule_test": tests}])


def test_a_server_of_too_few_requests_is_not_judged(tmp_path: Path) -> None:
    """5 failures of 12 requests a minute, and nothing else: the server judges from 20
    requests a minute (MODELPILOT_ALERT_MIN_REQUESTS), and so does the rule."""
    case = {
        "input_series": [requests("few", "ok", (20, 7)), requests("few", "500", (20, 5))],
        "alert_rule_test": [fired("ModelPilotHighErrorRate", "15m", None, "critical")],
    }
    run_rule_tests(tmp_path, [case])


def test_a_one_minute_burst_of_slow_requests_warns_while_it_lasts(tmp_path: Path) -> None:
    """Every request takes 1.2 s from 10:00 to 11:00; before and after, 0.1 s."""
    series = latencies("slow", (10, 100, 0.1), (1, 100, 1.2), (14, 100, 0.1))
    case = {
        "input_series": series,
        "alert_rule_test": [
            fired("ModelPilotHighLatencyP99", "9m45s", None, "warning"),
            fired("ModelPilotHighLatencyP99", "10m30s", "slow", "warning"),
            fired("ModelPilotHighLatencyP99", "12m30s", None, "warning"),
            fired("ModelPilotHighLatencyP99", "15m30s", None, "warning"),
        ],
    }
    run_rule_tests(tmp_path, [case])


def test_a_model_of_few_requests_that_are_all_slow_warns(tmp_path: Path) -> None:
    """15 requests a minute to ``tiny``, each 1.2 s, beside a busy fast model; and one slow
    request to an idle model, which warns nobody."""
    series = [
        *latencies("iris", (21, BUSY, 0.01)),
        *latencies("tiny", (21, 15, 1.2)),
        *latencies("rare", (10, 0, 2.0), (0.25, 4, 2.0), (10, 0, 2.0)),  # one request at 10:15
    ]
    tests = [
        fired("ModelPilotHighLatencyP99", "10m30s", "tiny", "warning"),
        fired("ModelPilotHighLatencyP99", "11m", "tiny", "warning"),
    ]
    run_rule_tests(tmp_path, [{"input_series": series, "alert_rule_test": tests}])
