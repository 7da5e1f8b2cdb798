"""The deploy files say which Prometheus rule the server's data_drift alert matches: it fires
on one drifted feature (its value the share drifted), as ModelPilotFeatureDrift does, while
``modelpilot_dataset_drift`` and ModelPilotDataDrift need MODELPILOT_DRIFT_DATASET_SHARE of the
features (a user who alerted on the server's alert in place of ModelPilotDataDrift was paged
for any one feature)."""

from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"


def words(text: str) -> str:
    return " ".join(text.split())


def test_the_deploy_readme_pairs_data_drift_with_the_feature_rule() -> None:
    readme = words((DEPLOY / "README.md").read_text())
    assert "counterpart of `ModelPilotFeatureDrift`, not of `ModelPilotDataDrift`" in readme
    assert "`MODELPILOT_DRIFT_DATASET_SHARE`" in readme


def test_the_drift_rules_say_which_server_alert_they_match() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    described = {
        rule["alert"]: words(rule["annotations"]["description"]).lower()
        for group in rules["groups"]
        for rule in group["rules"]
    }
    assert "not the server's data_drift alert" in described["ModelPilotDataDrift"]
    assert "the server's data_drift alert" in described["ModelPilotFeatureDrift"]
    head = (DEPLOY / "prometheus-rules.yml").read_text().split("groups:")[0]
    header = words(head.replace("#", " "))
    assert "data_drift fires on one drifted feature" in header


OLD_VERDICT = (  # "under 1000 rows a test decides, from there on PSI/JS": not the server's rule
    "a test decides",
    "from there on PSI",
    "PSI or Jensen-Shannon from there on",
    "On a larger window the PSI",
)


def test_the_readme_and_metrics_page_give_the_servers_verdict_rule() -> None:
    """The deploy README and docs/metrics.md said that under 1,000 rows a test decides a
    feature's drift and from there on PSI or Jensen-Shannon: the server wants the effect size
    on every window, and the tests too on small windows (and always for categories), so a
    feature with a KS p-value of 1e-11 and a PSI of 0.12 is not drifted."""
    readme = words((DEPLOY / "README.md").read_text())
    row = next(
        line
        for line in (DEPLOY.parents[1] / "docs" / "metrics.md").read_text().splitlines()
        if line.startswith("| `modelpilot_feature_drifted`")
    )
    for said in (readme, row):
        assert not [old for old in OLD_VERDICT if old in said]
        assert "on any window" in said
    assert "a categorical feature's on every window" in readme
    assert "category's on every window" in row


def test_the_readme_says_which_prometheus_the_rules_need_and_why() -> None:
    """The drift rules' keep_firing_for came in Prometheus 2.42; an older one refuses the
    whole file, which the README must say before an operator loads it."""
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    held = [r["alert"] for g in rules["groups"] for r in g["rules"] if "keep_firing_for" in r]
    assert held == ["ModelPilotDataDrift", "ModelPilotFeatureDrift", "ModelPilotConceptDrift"]
    readme = words((DEPLOY / "README.md").read_text())
    assert "need Prometheus 2.42 or newer" in readme
    assert "delete the three `keep_firing_for:` lines" in readme


def test_the_readme_lists_the_quiet_server_among_the_differences() -> None:
    """A tester's server kept its error_rate alert firing through minutes of no traffic (too
    few requests to judge), while ModelPilotHighErrorRate resolved a minute after the burst;
    the README's list of differences did not say so."""
    readme = words((DEPLOY / "README.md").read_text())
    differences = readme.split("Where the rules and the server's alerts still differ:")[1]
    differences = differences.split("`ModelPilotFeatureDrift` fires on")[0]
    assert "On a quiet server the two disagree for as long as the quiet lasts" in differences
    assert "`error_rate` or `latency` alert on a minute of fewer than 20 requests" in differences
