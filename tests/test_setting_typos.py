"""The warning about an unknown ``MODELPILOT_*`` variable suggests what it likely meant.

Compared whole, with the prefix every name shares, the prefix decided: MODELPILOT_PORT, the
first variable a container user sets, was taken for MODELPILOT_HOST."""

from __future__ import annotations

from modelpilot.config import unknown_settings


def suggestion(name: str) -> str:
    (found,) = unknown_settings({name: "1"})
    return found


def test_a_word_of_a_setting_suggests_the_settings_with_it() -> None:
    assert suggestion("MODELPILOT_PORT") == (
        "MODELPILOT_PORT (did you mean MODELPILOT_HTTP_PORT or MODELPILOT_GRPC_PORT?)"
    )
    assert suggestion("MODELPILOT_THREADS") == (
        "MODELPILOT_THREADS (did you mean MODELPILOT_INFERENCE_THREADS?)"
    )
    timeout = suggestion("MODELPILOT_TIMEOUT")
    assert "MODELPILOT_REQUEST_TIMEOUT_SECONDS" in timeout
    assert "HOST" not in timeout


def test_misspelt_names_suggest_the_setting_spelt_alike() -> None:
    assert suggestion("MODELPILOT_DRIFT_PSI_THRESHHOLD") == (
        "MODELPILOT_DRIFT_PSI_THRESHHOLD (did you mean MODELPILOT_DRIFT_PSI_THRESHOLD?)"
    )
    assert suggestion("MODELPILOT_LOGLEVEL") == (
        "MODELPILOT_LOGLEVEL (did you mean MODELPILOT_LOG_LEVEL?)"
    )
    assert suggestion("MODELPILOT_XYZZY") == "MODELPILOT_XYZZY"
