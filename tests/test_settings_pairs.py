"""Settings that are each in range but can never work together are refused at start, in one
line naming both: a minimum that the window it is counted in can never hold."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelpilot.config import Settings
from modelpilot.registry.store import Registry
from tests.cli.test_cli_edges import modelpilot

PAIRS = [
    ("MODELPILOT_DRIFT_MIN_ROWS", "500", "MODELPILOT_DRIFT_WINDOW_ROWS", "100"),
    ("MODELPILOT_PERFORMANCE_MIN_LABELS", "100", "MODELPILOT_PERFORMANCE_WINDOW_ROWS", "50"),
]


@pytest.mark.parametrize(("minimum", "low", "window", "small"), PAIRS)
def test_a_minimum_over_its_window_stops_serve_in_one_line(
    registry: Registry, minimum: str, low: str, window: str, small: str
) -> None:
    """Tester t4: drift window 136 rows "too few rows for a verdict: 136 of the 500 needed"
    forever, and quality "judged": false with an empty reason, without a word at start."""
    proc = modelpilot("serve", "--registry", registry.location, **{minimum: low, window: small})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(
        f"error: bad setting: {minimum}={low} is more than {window}={small}"
    )
    assert "lower" in proc.stderr


def test_a_minimum_equal_to_its_window_is_taken() -> None:
    Settings(drift_min_rows=100, drift_window_rows=100)
    Settings(performance_min_labels=50, performance_window_rows=50)
    with pytest.raises(ValidationError, match="MODELPILOT_DRIFT_MIN_ROWS=101 is more than"):
        Settings(drift_min_rows=101, drift_window_rows=100)
