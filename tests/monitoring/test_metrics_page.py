"""Every family a served, monitored model exports on /metrics is in docs/metrics.md, with its
type (44 of the 58 were named in no document)."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_every_exported_family_is_on_the_metrics_page(metrics_text: str) -> None:
    typed = re.findall(r"^# TYPE (modelpilot_\w+) (\w+)$", metrics_text, re.M)
    assert len(typed) > 40
    page = PAGE.read_text() if PAGE.exists() else ""
    rows = dict(re.findall(r"^\| `(modelpilot_\w+)` \| (\w+) \|", page, re.M))
    missing = [f"{name} ({kind})" for name, kind in typed if rows.get(name) != kind]
    assert not missing, "not on docs/metrics.md as exported: " + ", ".join(missing)
