"""docs/metrics.md lists every metric family that a server exports, as it exports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # builds five in-process servers, two with a monitoring process (~30 s)
def test_the_metrics_page_is_fresh_and_complete() -> None:
    script = ROOT / "scripts" / "metrics_reference.py"
    checked = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
