"""promtool's unit tests of deploy/monitoring/prometheus-rules.yml: series in, alerts out.

The series are sampled every 15 s, the scrape interval the deploy README asks for, since the
service rules judge a one-minute window (``rate(...[1m])``), which wants several scrapes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
STEP_SECONDS = 15
STEPS_A_MINUTE = 60 // STEP_SECONDS


def counter(*stretches: tuple[float, float]) -> str:
    """promtool ``values`` of a counter that rises ``per_minute`` for ``minutes``, stretch after
    stretch (``(10, 100), (1, 0)``: 100 a minute for ten minutes, then still for one), sampled
    every STEP_SECONDS from 0."""
    values, total = [0.0], 0.0
    for minutes, per_minute in stretches:
        for _ in range(round(minutes * STEPS_A_MINUTE)):
            total += per_minute / STEPS_A_MINUTE
            values.append(total)
    return " ".join(f"{value:g}" for value in values)


def run_rule_tests(tmp_path: Path, cases: list[dict[str, Any]]) -> None:
    """Run promtool's ``cases`` (each ``input_series`` and ``alert_rule_test``), evaluated every
    STEP_SECONDS, against the rule file; fail with promtool's words. Skips where promtool
    (Debian's prometheus package) is not installed, as the other promtool checks do."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            del rule["annotations"]  # promtool would compare their wording too
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    interval = f"{STEP_SECONDS}s"
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": interval,
        "tests": [{"interval": interval, **case} for case in cases],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
