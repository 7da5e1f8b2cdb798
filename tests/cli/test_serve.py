"""``modelpilot serve``: what it refuses before any server starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from modelpilot.cli.common import make_settings
from modelpilot.config import unknown_settings
from modelpilot.errors import BadRequest, BadSettings, ModelNotFound
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.cli.conftest import Run


def test_serve_with_workers_checks_the_models_before_starting_any(
    run: Run, registry_dir: Path, iris_model_path: Path
) -> None:
    """Each worker died of the missing model and was started again, forever; alone, the
    server said it in one line and exited 1. Now the workers' server says the same, first."""
    reg = Registry.open(registry_dir)
    try:
        register_model(reg, "iris", iris_model_path, aliases=["staging"])
    finally:
        reg.close()
    # The port is taken (not shared): starting workers would fail on it, after the check.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = run(
            "serve",
            *("--model", "iris@staging", "--model", "fraud:3", "--workers", "2"),
            *("--host", "127.0.0.1", "--http-port", port, "--grpc-port", "0"),
        )
    assert isinstance(result.exception, ModelNotFound), result.output
    assert (
        str(result.exception) == "no model named 'fraud' in the registry; registered models: iris"
    )


def test_two_references_to_one_model_are_refused(run: Run, registry_dir: Path) -> None:
    """``--model ver:1 --model ver@staging`` served the last alone, and said nothing."""
    result = run("serve", "--model", "ver:1", "--model", "ver@staging", "--http-port", "0")
    assert isinstance(result.exception, BadRequest), result.output
    assert str(result.exception).startswith(
        "--model ver:1 and --model ver@staging name the same model: a server serves one "
    )
    assert "/v2/models/ver/versions/N" in str(result.exception)


LEVELS = "Input should be 'debug', 'info', 'warning', 'error' or 'critical'"


def test_an_unknown_log_level_is_a_bad_setting(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """It was a ValueError traceback from the logging module."""
    result = run("serve", "--log-level", "loud")
    assert isinstance(result.exception, BadSettings), result.output
    assert str(result.exception) == f"bad setting: --log-level=loud: {LEVELS}"
    monkeypatch.setenv("MODELPILOT_LOG_LEVEL", "loud")
    result = run("serve")
    assert isinstance(result.exception, BadSettings), result.output
    assert str(result.exception) == f"bad setting: MODELPILOT_LOG_LEVEL=loud: {LEVELS}"


def test_log_levels_are_listed_and_taken_in_any_case(run: Run) -> None:
    assert make_settings(log_level="WARNING").log_level == "warning"
    help_text = " ".join(run("serve", "--help", registry=False).stdout.split())
    assert "debug, info, warning, error or critical" in help_text


def test_a_misspelt_setting_is_said_and_a_bad_webhook_refused(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic ignores variables that name no setting: a typo left the default in place,
    unsaid. A webhook URL that was no URL was taken, and failed when an alert fired."""
    monkeypatch.setenv("MODELPILOT_ALERT_WEBHOOK_URL", "notaurl")
    result = run("serve")
    assert isinstance(result.exception, BadSettings), result.output
    assert "MODELPILOT_ALERT_WEBHOOK_URL=notaurl" in str(result.exception)
    assert "http:// or https:// URL" in str(result.exception)
    monkeypatch.setenv("MODELPILOT_ALERT_WEBHOOK_URL", "http://127.0.0.1:99999/hook")
    result = run("serve")
    assert isinstance(result.exception, BadSettings), result.output
    assert "has a bad port" in str(result.exception)
    monkeypatch.delenv("MODELPILOT_ALERT_WEBHOOK_URL")
    monkeypatch.setenv("MODELPILOT_DRIFT_WINDOW_ROW", "100")
    with socket.socket() as busy:  # so that serve stops right after its start-up checks
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = run("serve", "--host", "127.0.0.1", "--http-port", port, "--grpc-port", "0")
    assert result.exit_code != 0
    assert (
        "MODELPILOT_DRIFT_WINDOW_ROW (did you mean MODELPILOT_DRIFT_WINDOW_ROWS?) is no setting"
        in result.stderr
    ), result.output


def test_setting_names_are_judged_whatever_their_case() -> None:
    """pydantic reads MODELPILOT_Http_Port as MODELPILOT_HTTP_PORT: it was said to be ignored
    though it was used, and a misspelt lower-case name went unsaid."""
    found = unknown_settings(
        {
            "MODELPILOT_Http_Port": "1",
            "modelpilot_http_port": "2",
            "modelpilot_drift_window_row": "5",
            "MODELPILOT_REQUIRE_SERVICES": "1",
            "PATH": "/bin",
        }
    )
    assert found == ["modelpilot_drift_window_row (did you mean MODELPILOT_DRIFT_WINDOW_ROWS?)"]
