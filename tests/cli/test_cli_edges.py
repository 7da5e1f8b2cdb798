"""Edges of the verbs: stated quality figures, settings of demo, error lines, help texts."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris

from modelpilot.errors import InvalidInput
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.cli.conftest import Run
from tests.conftest import free_port


@pytest.fixture
def labelled_csv(tmp_path: Path, iris_frame: pd.DataFrame) -> Path:
    """The iris rows with their species, as ``--reference ... --target species`` takes."""
    path = tmp_path / "train.csv"
    iris_frame.assign(species=load_iris().target).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("value", ["91%", math.nan, math.inf, True, None])
def test_a_stated_quality_figure_that_is_no_number_is_refused(
    registry: Registry, iris_model_path: Path, value: object
) -> None:
    """Text such as "91%" was kept, which the monitor cannot read: live quality was judged
    against the measured figure instead, with nothing said. (The library API: REST's
    registration goes through it too.)"""
    with pytest.raises(InvalidInput) as info:
        register_model(registry, "iris", iris_model_path, metadata={"accuracy": value})
    assert str(info.value) == (
        f"metadata accuracy={value!r}: accuracy is a quality figure live labels are judged "
        "against, so it must be a finite number, such as accuracy=0.91"
    )
    assert registry.list_models() == []


def test_a_stated_figure_in_a_metrics_mapping_is_checked_too(
    registry: Registry, iris_model_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="metadata rmse='low'"):
        register_model(registry, "iris", iris_model_path, metadata={"metrics": {"rmse": "low"}})


def test_other_metadata_may_be_any_text(registry: Registry, iris_model_path: Path) -> None:
    meta = {"accuracy": 0.9, "metrics": {"auc": 1}, "owner": "91%"}
    version = register_model(registry, "iris", iris_model_path, metadata=meta)
    assert version.metadata["owner"] == "91%"


def test_register_refuses_a_percentage_by_name(
    run: Run, iris_model_path: Path, labelled_csv: Path
) -> None:
    args = ("register", "iris", str(iris_model_path), "--reference", str(labelled_csv))
    result = run(*args, "--target", "species", "-m", "accuracy=91%")
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidInput)
    assert "metadata accuracy='91%'" in str(result.exception)
    assert "such as accuracy=0.91" in str(result.exception)


def test_register_says_a_stated_figure_is_what_live_quality_is_judged_against(
    run: Run, iris_model_path: Path, labelled_csv: Path
) -> None:
    """The measured figure was printed, and the stated one that wins over it was not."""
    args = ("register", "iris", str(iris_model_path), "--reference", str(labelled_csv))
    result = run(*args, "--target", "species", "-m", "accuracy=0.91")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())  # as one line, however the console wrapped it
    assert "Live accuracy will be judged against the stated 0.91, not the " in said
    assert " measured on the reference" in said
    assert "Live f1" not in said and "Live auc" not in said


@pytest.mark.slow
def test_demo_takes_its_ports_from_the_settings(tmp_path: Path) -> None:
    """MODELPILOT_HTTP_PORT and MODELPILOT_GRPC_PORT were ignored: the demo served on 8000
    and 8001 (or, those busy, on other ports) whatever they said."""
    http, grpc = free_port(), free_port()
    env = {**os.environ, "MODELPILOT_HTTP_PORT": str(http), "MODELPILOT_GRPC_PORT": str(grpc)}
    registry = tmp_path / "registry"
    demo = [sys.executable, "-m", "modelpilot", "demo", "--registry", str(registry)]
    proc = subprocess.run(
        [*demo, "--no-keep-serving"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stderr.split())  # as one line, however the console wrapped it
    assert f"--http-port {http} --grpc-port {grpc} " in said
    assert "busy" not in proc.stderr


def test_demo_help_names_the_port_settings(run: Run) -> None:
    said = " ".join(run("demo", "--help", registry=False).stdout.split())
    assert "Default: $MODELPILOT_HTTP_PORT, else 8000." in said
    assert "Default: $MODELPILOT_GRPC_PORT, else 8001." in said


def modelpilot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``modelpilot ARGS`` with ``env`` on top of this environment (less any result cache
    setting), its output not a terminal (as under a script, CI, or a log collector)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MODELPILOT_RESULT_CACHE")}
    return subprocess.run(
        [sys.executable, "-m", "modelpilot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, "COLUMNS": "80", **env},
    )


def test_an_error_is_one_line_however_long(registry: Registry) -> None:
    """Where stderr was no terminal, Rich wrapped the line at 80 columns."""
    proc = modelpilot("serve", "--registry", registry.location, MODELPILOT_WORKERS="0")
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: bad setting: MODELPILOT_WORKERS=0: Input should be greater than or equal to 1\n"
    )


def test_a_result_cache_flag_missing_its_setting_is_named_as_a_flag(registry: Registry) -> None:
    """It was said as MODELPILOT_RESULT_CACHE=disk, a variable the user had not set."""
    where = ("--registry", registry.location, "--host", "127.0.0.1", "--grpc-port", "0")
    proc = modelpilot("serve", *where, "--http-port", str(free_port()), "--result-cache", "disk")
    assert proc.returncode == 1
    assert "error: --result-cache disk needs MODELPILOT_RESULT_CACHE_DIR\n" in proc.stderr


def help_of(run: Run, verb: str) -> str:
    """``modelpilot VERB --help`` as one line, however Click wrapped it (at spaces, and
    after the hyphens inside words)."""
    text = re.sub(r"(?<=\w-)\n\s+", "", run(verb, "--help", registry=False).stdout)
    return " ".join(text.split())


def test_serve_help_names_its_settings_port_zero_and_no_authentication(run: Run) -> None:
    said = help_of(run, "serve")
    for setting, default in [("HOST", "0.0.0.0"), ("HTTP_PORT", "8000"), ("WORKERS", "1")]:
        assert f"Default: $MODELPILOT_{setting}, else {default}." in said
    assert "Default: $MODELPILOT_GRPC_PORT, else 8001." in said
    assert "0 takes a free port the system picks" in said
    assert "0.0.0.0 serves every network the machine is on, with no authentication" in said


def test_demo_help_is_plain_text_and_says_what_it_changes(run: Run) -> None:
    said = help_of(run, "demo")
    assert "``" not in said
    assert "modelpilot-demo-rows.csv in the current folder" in said
    assert "A busy port is swapped for a free one" in said
    assert "registers a new version" in said and "production alias" in said


def test_predict_and_drift_help_say_exit_codes_and_defaults(run: Run) -> None:
    assert "Ctrl-C (exit code 130) or SIGTERM (exit code 143)" in help_of(run, "predict")
    assert "Default: $MODELPILOT_DRIFT_WINDOW_ROWS, the live window's" in help_of(run, "drift")


def test_a_setting_holding_what_would_not_show_is_quoted_in_its_error(registry: Registry) -> None:
    """A tab inside the webhook URL showed as a space, and the error read as if the URL
    were fine."""
    url = "http://127.0.0.1:9/ho\tok"
    proc = modelpilot("serve", "--registry", registry.location, MODELPILOT_ALERT_WEBHOOK_URL=url)
    assert proc.returncode == 1
    assert "MODELPILOT_ALERT_WEBHOOK_URL='http://127.0.0.1:9/ho\\tok': " in proc.stderr
