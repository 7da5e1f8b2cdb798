"""The CLI's copies of declarations elsewhere are what they copy."""

from __future__ import annotations

import pytest

from modelpilot.cli import declared
from modelpilot.config import Settings
from modelpilot.registry import refs
from modelpilot.runtimes import flavors


def test_the_alias_and_flavors_are_the_registry_s_and_the_runtimes() -> None:
    assert declared.PRODUCTION == refs.PRODUCTION
    assert declared.FLAVORS == flavors.FLAVORS


@pytest.mark.parametrize("name", sorted(declared.DRIFT_SETTINGS))
def test_a_drift_setting_s_default_and_range_are_the_settings(name: str) -> None:
    """What drift --help states of the setting is what the setting (and so the flag's check)
    takes."""
    field = Settings.model_fields[name]
    copy = declared.DRIFT_SETTINGS[name]
    bounds = ("gt", "ge", "lt", "le")
    declared_bounds = {
        bound: getattr(rule, bound)
        for rule in field.metadata
        for bound in bounds
        if getattr(rule, bound, None) is not None
    }
    assert copy.default == field.default
    assert {b: getattr(copy, b) for b in bounds if getattr(copy, b) is not None} == declared_bounds


def test_every_drift_setting_the_help_names_is_copied() -> None:
    assert set(declared.DRIFT_SETTINGS) == {
        "drift_psi_threshold",
        "drift_js_threshold",
        "drift_p_value",
    }
