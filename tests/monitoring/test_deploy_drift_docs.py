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
