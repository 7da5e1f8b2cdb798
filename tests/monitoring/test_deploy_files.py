"""The cluster files in deploy/monitoring ask only for metrics the server really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpilot.config import Settings
from modelpilot.monitoring.alerts import RULES, SEVERITY
from tests.monitoring.promtool_rules import counter, run_rule_tests

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
METRIC = re.compile(r"\bmodelpilot_[a-z_]+")
SUFFIXES = ("_bucket", "_count", "_sum")
REQUESTS_BY_STATUS = re.compile(  # the status matcher of a requests_total selector
    r"modelpilot_requests_total\{[^}]*\bstatus\s*(=~|!=|=|!~)\s*\"([^\"]*)\""
)


def exported_names(metrics_text: str) -> set[str]:
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def referenced(text: str) -> set[str]:
    found = set()
    for name in METRIC.findall(text):
        for suffix in SUFFIXES:
            name = name.removesuffix(suffix)
        found.add(name)
    return found


def test_rules_file_is_a_prometheus_rule_file() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    alerts = [r for group in rules["groups"] for r in group["rules"]]
    names = {r["alert"] for r in alerts}
    assert {"ModelPilotDataDrift", "ModelPilotConceptDrift", "ModelPilotHighErrorRate"} <= names
    assert all(r["expr"] and r["labels"]["severity"] for r in alerts)
    promtool = shutil.which("promtool")
    if promtool:  # Debian's prometheus package; checked where it is installed
        result = subprocess.run(
            [promtool, "check", "rules", str(DEPLOY / "prometheus-rules.yml")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_in_the_deploy_files_is_exported(metrics_text: str) -> None:
    exported = exported_names(metrics_text)
    exported |= {n.removesuffix("_total") for n in exported}
    for suffix in SUFFIXES:
        exported |= {n.removesuffix(suffix) for n in exported}
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    assert dashboard["panels"]
    for path in (DEPLOY / "prometheus-rules.yml", DEPLOY / "grafana-dashboard.json"):
        missing = referenced(path.read_text()) - exported
        assert not missing, f"{path.name} uses metrics the server does not export: {missing}"


def test_the_error_rate_is_server_errors_in_the_rule_the_panels_and_the_readme() -> None:
    """The rule counted 5xx, the README said "5% non-ok requests" and the Grafana panels
    drew status!="ok", client errors and hang-ups included: three different error rates.
    The server's own error_rate alert counts 5xx only, and so do they all now."""
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    rule = next(
        r for g in rules["groups"] for r in g["rules"] if r["alert"] == "ModelPilotHighErrorRate"
    )
    assert set(REQUESTS_BY_STATUS.findall(rule["expr"])) == {("=~", "5..")}
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    shares = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            selectors = REQUESTS_BY_STATUS.findall(target["expr"])
            if selectors:
                shares[(panel["title"], target["legendFormat"])] = selectors
    assert shares == {
        ("Error rate (5xx)", "__auto"): [("=~", "5..")],
        ("Error rate by model", "{{model}} 5xx share"): [("=~", "5..")],
        ("Error rate by model", "{{model}} 4xx share (client errors)"): [("=~", "4..")],
    }
    readme = (DEPLOY / "README.md").read_text()
    assert "non-ok" not in readme
    assert "5% of requests failed on the server (5xx)" in " ".join(readme.split())


SERVER_RULE = {  # each Prometheus rule and the server's own alert (/api/alerts) it stands for
    "ModelPilotHighErrorRate": "error_rate",
    "ModelPilotHighLatencyP99": "latency",
    "ModelPilotRolloutStalled": "rollout_stalled",
    "ModelPilotDataDrift": "data_drift",
    "ModelPilotFeatureDrift": "data_drift",
    "ModelPilotConceptDrift": "concept_drift",
    "ModelPilotMonitoringLosing": "monitoring_losing",
}
PROMETHEUS_ONLY = {  # no counterpart among the server's alerts
    "ModelPilotDown",
    "ModelPilotRequestTimeouts",
    "ModelPilotMonitoringFailing",
}
ERROR_SHARE = re.compile(r"\)\s*>\s*([0-9.]+)\s+and\b")
REQUESTS_A_MINUTE = re.compile(r"\*\s*60\s*\)\s*>=\s*([0-9]+)")
GROUPED_BY = re.compile(r"\bby\s*\(([^)]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    return [r for group in rules["groups"] for r in group["rules"]]


def alert_rule(name: str) -> dict[str, Any]:
    return next(r for r in alert_rules() if r["alert"] == name)


def default(setting: str) -> Any:
    return Settings.model_fields[setting].default


def words(text: str) -> str:
    return " ".join(text.split())


def dashboard_targets() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [(p, t) for p in dashboard["panels"] for t in p.get("targets", [])]


def test_each_rule_has_the_severity_of_the_servers_alert_of_its_kind() -> None:
    """The server's data drift alert was critical on dataset drift, when ModelPilotDataDrift,
    which fires on nothing else, was a warning."""
    severities = {r["alert"]: r["labels"]["severity"] for r in alert_rules()}
    assert set(severities) == set(SERVER_RULE) | PROMETHEUS_ONLY
    assert set(SERVER_RULE.values()) == set(RULES)
    for name, rule in SERVER_RULE.items():
        assert severities[name] == SEVERITY[rule], f"{name} is not {rule}'s {SEVERITY[rule]}"


def test_the_error_rate_rule_has_the_servers_thresholds_and_says_how_it_differs() -> None:
    """The server judged the error rate on at least 20 requests a minute, which no page told
    of, and ModelPilotHighErrorRate on any: 5 server errors of 12 requests fired only it."""
    rule = alert_rule("ModelPilotHighErrorRate")
    expr = words(rule["expr"])
    share, minimum = ERROR_SHARE.search(expr), REQUESTS_A_MINUTE.search(expr)
    assert share and float(share[1]) == default("alert_error_rate")
    assert minimum and int(minimum[1]) == default("alert_min_requests")
    text = words(rule["annotations"]["description"])
    assert f"at least {default('alert_min_requests')} requests a minute" in text
    assert "MODELPILOT_ALERT_MIN_REQUESTS" in text
    # The server's alert is service-wide (model="") and per version, on evidence: it says so.
    assert "all of one server's requests together and each model version apart" in text
    assert "on evidence rather than the share alone" in text


def test_the_error_rate_rule_counts_server_errors_alone(tmp_path: Path) -> None:
    """10% of a busy model's requests failing fires; half of a model's requests refused as bad
    input (4xx) does not: a client sending bad requests is not the server failing."""
    series = [
        {
            "series": f'modelpilot_requests_total{{model="{model}", status="{status}"}}',
            "values": counter((30, count)),
        }
        for model, status, count in [
            ("busy", "500", 10),
            ("busy", "ok", 90),
            ("clients", "404", 50),
            ("clients", "ok", 50),
        ]
    ]
    fired = [{"exp_labels": {"model": "busy", "severity": "critical"}}]
    test = {"eval_time": "20m", "alertname": "ModelPilotHighErrorRate", "exp_alerts": fired}
    run_rule_tests(tmp_path, [{"input_series": series, "alert_rule_test": [test]}])


def test_the_latency_rule_waits_for_requests_as_the_server_does(tmp_path: Path) -> None:
    """One 0.7 s request to an idle model was its p99, and fired ModelPilotHighLatencyP99."""
    series = []
    for model, slow_a_minute in [("idle", 1), ("busy", 30)]:
        for le, count in [("0.5", 0), ("1.0", slow_a_minute), ("+Inf", slow_a_minute)]:
            series.append(
                {
                    "series": f'modelpilot_request_duration_seconds_bucket{{model="{model}", '
                    f'le="{le}"}}',
                    "values": counter((30, count)),
                }
            )
        series.append(
            {
                "series": f'modelpilot_request_duration_seconds_count{{model="{model}"}}',
                "values": counter((30, slow_a_minute)),
            }
        )
    fired = [{"exp_labels": {"model": "busy", "severity": "warning"}}]
    test = {"eval_time": "20m", "alertname": "ModelPilotHighLatencyP99", "exp_alerts": fired}
    run_rule_tests(tmp_path, [{"input_series": series, "alert_rule_test": [test]}])


def test_a_trouble_of_one_server_fires_naming_that_server(tmp_path: Path) -> None:
    """A version that fails to load on one of two instances (a dependency missing on one
    host) fires for that instance alone, and names it. (The model-level drift rules judge
    over every server instead: test_deploy_drift_rules.py.)"""
    series = [
        {
            "series": f'modelpilot_rollout_stalled{{instance="{at}", model="iris", version="2"}}',
            "values": f"{value}x120",
        }
        for at, value in [("a:8000", 1), ("b:8000", 0)]
    ]
    fired = [
        {
            "exp_labels": {
                "instance": "a:8000",
                "model": "iris",
                "version": "2",
                "severity": "critical",
            }
        }
    ]
    test = {"eval_time": "20m", "alertname": "ModelPilotRolloutStalled", "exp_alerts": fired}
    run_rule_tests(tmp_path, [{"input_series": series, "alert_rule_test": [test]}])


def test_the_feature_drift_rule_and_panel_say_what_their_metric_means() -> None:
    """ModelPilotFeatureDrift said "a drift score above its threshold", and the panel of
    modelpilot_feature_drifted "the feature's score is above its threshold": under 1,000 rows
    a test's p-value decides it."""
    rule = alert_rule("ModelPilotFeatureDrift")
    assert rule["expr"].startswith(
        "max by (model, version, feature) (max_over_time(modelpilot_feature_drifted[2m]))"
    )
    text = words(" ".join(rule["annotations"].values()))
    verdict = [p for p, t in dashboard_targets() if "modelpilot_feature_drifted" in t["expr"]]
    assert verdict
    for said in [text, *(words(p["description"]) for p in verdict)]:
        assert "above its threshold" not in said and "p-value" in said
        assert "MODELPILOT_DRIFT_LARGE_SAMPLE_ROWS rows (default 1000)" in said
        assert default("drift_large_sample_rows") == 1000
        # The effect size is wanted on every window, the tests on small ones (and always for
        # categories); "under 1000 rows a test decides, from there on PSI" was the old rule.
        assert "on any window" in said.lower() and "on every window" in said
        assert "decided" not in said and "from there on" not in said
    assert "modelpilot_feature_drifted has been 1" in text
    assert f"MODELPILOT_DRIFT_P_VALUE (default {default('drift_p_value')})" in text
    assert f"PSI (numbers, default threshold {default('drift_psi_threshold')})" in text
    assert f"Jensen-Shannon distance (categories, {default('drift_js_threshold')})" in text


def test_every_series_a_panel_draws_has_a_legend_of_its_own() -> None:
    """ "Drift score per feature" drew the raw series as "{{model}} · {{feature}}
    ({{method}})", and "Drifted features" and "Prediction mean / variance" dropped the
    version: the two versions of a canary were drawn under one name."""
    for panel, target in dashboard_targets():
        legend = target["legendFormat"]
        if legend == "__auto":  # Grafana names the series by all their labels
            continue
        grouped = GROUPED_BY.search(target["expr"])
        assert grouped, f"{panel['title']}: {target['expr']} draws labels it does not name"
        kept = {label.strip() for label in grouped[1].split(",")} - {"le"}
        named = set(LEGEND_LABEL.findall(legend))
        assert kept <= named, f"{panel['title']}: {legend!r} does not name {kept - named}"


def test_the_drift_score_panel_draws_the_one_score_a_variable_picks(metrics_text: str) -> None:
    """PSI, Jensen-Shannon, KL and Wasserstein (in standard deviations) shared one axis."""
    scores = [(p, t) for p, t in dashboard_targets() if "feature_drift_score" in t["expr"]]
    assert [p["title"] for p, _ in scores] == ["Drift score per feature: $method"]
    assert all('method="$method"' in t["expr"] for _, t in scores)
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    method = next(v for v in dashboard["templating"]["list"] if v["name"] == "method")
    assert method["query"]["query"] == "label_values(modelpilot_feature_drift_score, method)"
    assert not method["multi"] and not method["includeAll"]
    exported = set(
        re.findall(r'^modelpilot_feature_drift_score\{[^}]*method="(\w+)"', metrics_text, re.M)
    )
    assert exported == {"psi", "js_distance", "kl_divergence", "wasserstein"}
    assert method["current"]["value"] == "psi"
    readme = (DEPLOY / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in exported)


def test_the_metrics_pass_promtools_lint(metrics_text: str) -> None:
    """``modelpilot_system_cpu_count`` was a gauge named like a histogram's count."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=metrics_text, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def panel_queries() -> list[str]:
    """Every query of the Grafana dashboard, its variables set as a user would set them."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    values = {"$__rate_interval": "5m", "$model": ".*", "$metric": "accuracy", "$method": "psi"}
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            expr = target["expr"]
            for variable, value in values.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"a variable this test does not set: {expr}"
            queries.append(expr)
    return queries


def test_every_panel_query_evaluates_on_the_servers_series(
    metrics_text: str, tmp_path: Path
) -> None:
    """Each panel's query, run by Prometheus's own engine (promtool) over the series a server
    exports, with their label sets, as a server of two workers would export them: none may fail.
    (The CPU panel's query added two counters after ``rate()``, which drops their names, and
    failed on every setup: "vector cannot contain metrics with the same labelset".)"""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    series = []
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        sample = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?", line)
        assert sample, line
        name, inner = sample.group(1), sample.group(2) or ""
        for worker in ("0", "1"):
            labelled = ", ".join(p for p in (inner, f'instance="a", worker="{worker}"') if p)
            series.append({"series": f"{name}{{{labelled}}}", "values": "1+1x30"})
    queries = panel_queries()
    assert queries
    case = {
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [{"expr": q, "eval_time": "20m", "exp_samples": []} for q in queries],
    }
    tests = {"rule_files": [], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], capture_output=True, text=True, cwd=tmp_path
    )
    # A query with samples "fails" (none were expected): only an evaluation error counts here.
    said = result.stdout + result.stderr
    failed = [line for line in said.splitlines() if ", err: " in line]
    assert not failed, "\n".join(failed)
    assert "got: {" in said, said[-2000:]  # promtool read the file and evaluated the queries
