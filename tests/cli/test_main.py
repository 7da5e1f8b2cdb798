"""Building the ``modelpilot`` app, and ``--help``, import none of what the verbs run on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = (
    "pandas",
    "numpy",
    "sqlalchemy",
    "httpx",
    "pydantic_settings",
    "modelpilot.config",
    "modelpilot.registry",
    "modelpilot.runtimes",
    "modelpilot.serving",
    "modelpilot.monitoring",
    "modelpilot.server",
    "modelpilot.tabular",
)
"""What took ``modelpilot --help`` about a second (several on a busy machine), and every
command paid before doing anything. (Typer imports pydantic for a verb's --help itself.)"""

HELP_OF_EVERY_VERB = f"""
import contextlib, io, json, sys

import typer

from modelpilot.cli.main import app

found = {{"import": sorted(m for m in {HEAVY!r} if m in sys.modules)}}
verbs = sorted(typer.main.get_command(app).commands)
for argv in [["--help"], *([verb, "--help"] for verb in verbs)]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        app(argv, prog_name="modelpilot")
    found[" ".join(argv)] = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps({{"verbs": verbs, "found": found}}))
"""


def test_building_the_app_and_help_import_nothing_heavy() -> None:
    """In a fresh process (this one has them all loaded): importing the app, then the help
    of the app and of each verb, in turn."""
    proc = subprocess.run(
        [sys.executable, "-c", HELP_OF_EVERY_VERB],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )
    assert proc.returncode == 0, proc.stderr
    said = json.loads(proc.stdout)
    assert {"serve", "predict", "drift", "demo"} <= set(said["verbs"])
    assert said["found"] == {step: [] for step in said["found"]}
