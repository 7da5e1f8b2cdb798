"""docs/settings.md lists every setting as ``modelpilot.config.Settings`` declares it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelpilot.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_settings_page_is_fresh_and_complete() -> None:
    script = ROOT / "scripts" / "settings_reference.py"
    checked = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert checked.returncode == 0, checked.stderr
    page = (ROOT / "docs" / "settings.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`MODELPILOT_{name.upper()}`" in page
        assert field.description, f"{name} has no docstring in config.py"
