"""The cluster files in deploy/monitoring ask only for metrics the server really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

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
    assert REQUESTS_BY_STATUS.findall(rule["expr"]) == [("=~", "5..")]
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
