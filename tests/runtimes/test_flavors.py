"""Flavor detection and dispatch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelpilot.errors import BadRequest
from modelpilot.runtimes.flavors import FLAVORS, detect_flavor, runtime_class


@pytest.mark.parametrize(
    ("name", "flavor"),
    [
        ("m.joblib", "sklearn"),
        ("m.pkl", "sklearn"),
        ("m.onnx", "onnx"),
        ("m.ubj", "xgboost"),
        ("m.py", "python"),
    ],
)
def test_detect_by_suffix(tmp_path: Path, name: str, flavor: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    assert detect_flavor(path) == flavor


def test_unknown_files_ask_for_a_flavor(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x00\x01")
    with pytest.raises(BadRequest, match="pass --flavor"):
        detect_flavor(path)
    text = tmp_path / "notes.json"
    text.write_text('{"hello": 1}')
    with pytest.raises(BadRequest, match=r"cannot tell the flavor of notes\.json"):
        detect_flavor(text)


def test_every_flavor_has_a_runtime_and_unknown_ones_are_refused() -> None:
    for flavor in FLAVORS:
        assert runtime_class(flavor).flavor == flavor
    with pytest.raises(BadRequest, match="unknown flavor 'keras'"):
        runtime_class("keras")


def test_importing_modelpilot_does_not_import_optional_libraries() -> None:
    import subprocess

    code = (
        "import sys, modelpilot.runtimes, modelpilot.serving.engine, modelpilot.server.rest;"
        "print(sorted(m for m in ('onnxruntime', 'xgboost', 'lightgbm', 'sklearn')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
