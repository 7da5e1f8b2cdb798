"""What the verbs' signatures show of other layers' declarations, copied so that building the
app imports none of those layers.

Importing ``modelpilot.registry.refs`` or ``modelpilot.runtimes.flavors`` imports their
packages, and with them SQLAlchemy, pandas and numpy; ``modelpilot.config`` builds its
pydantic-settings class: every command, ``--help`` too, waited for them.
tests/cli/test_declared.py pins each copy to the declaration it copies.
"""

from __future__ import annotations

from dataclasses import dataclass

PRODUCTION = "production"
"""``modelpilot.registry.refs.PRODUCTION``: the alias ``rollback`` moves by default."""

FLAVORS: tuple[str, ...] = ("sklearn", "onnx", "xgboost", "lightgbm", "python")
"""``modelpilot.runtimes.flavors.FLAVORS``: what ``register --flavor`` takes."""


@dataclass(frozen=True)
class FloatSetting:
    """A number setting's default and range, as ``Settings`` declares them (``Field``)."""

    default: float
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None


DRIFT_SETTINGS = {
    "drift_psi_threshold": FloatSetting(0.2, gt=0.0),
    "drift_js_threshold": FloatSetting(0.19, gt=0.0, le=1.0),
    "drift_p_value": FloatSetting(0.01, gt=0.0, lt=1.0),
}
"""``modelpilot.config.Settings``' drift thresholds, which ``drift --help`` states (building
the settings' class alone took most of the time ``--help`` took once pandas was gone)."""
