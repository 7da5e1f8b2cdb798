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


def gauge(*stretches: tuple[float, float | None]) -> str:
    """promtool ``values`` of a gauge that reads ``value`` for ``minutes``, stretch after
    stretch (``(20, 1), (1, None), (10, 1)``), sampled every STEP_SECONDS from 0. A value of
    None is a target Prometheus cannot scrape (a server restarting): a staleness marker, which
    Prometheus writes at the first failed scrape and which ends the series at once, then no
    samples. (A mere missing sample would leave the last value visible for five minutes.)"""
    values = []
    for minutes, value in stretches:
        for step in range(round(minutes * STEPS_A_MINUTE)):
            if value is not None:
                values.append(f"{value:g}")
            else:
                values.append("_" if step else "stale")
    return " ".join(values)


def run_rule_tests(
    tmp_path: Path, cases: list[dict[str, Any]], annotations: tuple[str, ...] = ()
) -> None:
    """Run promtool's ``cases`` (each ``input_series`` and ``alert_rule_test``), evaluated every
    STEP_SECONDS, against the rule file; fail with promtool's words. Only the ``annotations``
    named are kept, since promtool compares every annotation an alert has, word for word.
    Skips where promtool (Debian's prometheus package) is not installed, as the other promtool
    checks do."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["annotations"] = {
                name: text for name, text in rule["annotations"].items() if name in annotations
            }
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
