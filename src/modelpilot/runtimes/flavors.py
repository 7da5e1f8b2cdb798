"""Which runtime serves which file: flavor names, detection, and loading."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from modelpilot.errors import BadRequest
from modelpilot.registry.signature import Signature
from modelpilot.runtimes.base import Runtime

# Flavor -> (module, class). Modules are imported on first use: the core must not pay for
# onnxruntime, XGBoost or LightGBM unless a model needs them.
_RUNTIMES: dict[str, tuple[str, str]] = {
    "sklearn": ("modelpilot.runtimes.sklearn", "SklearnRuntime"),
    "onnx": ("modelpilot.runtimes.onnx", "OnnxRuntime"),
    "xgboost": ("modelpilot.runtimes.xgboost", "XGBoostRuntime"),
    "lightgbm": ("modelpilot.runtimes.lightgbm", "LightGBMRuntime"),
    "python": ("modelpilot.runtimes.python", "PythonRuntime"),
}
FLAVORS: tuple[str, ...] = tuple(_RUNTIMES)

_BY_SUFFIX = {
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".onnx": "onnx",
    ".ubj": "xgboost",
    ".xgb": "xgboost",
    ".lgb": "lightgbm",
    ".py": "python",
}


def runtime_class(flavor: str) -> type[Runtime]:
    """The runtime class of ``flavor``."""
    try:
        module_name, class_name = _RUNTIMES[flavor]
    except KeyError:
        raise BadRequest(f"unknown flavor {flavor!r}; use one of {', '.join(FLAVORS)}") from None
    cls: type[Runtime] = getattr(importlib.import_module(module_name), class_name)
    return cls


def detect_flavor(path: Path) -> str:
    """The flavor of a model file, from its suffix and, where that is ambiguous, its bytes."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    head = path.read_bytes()[:64] if path.is_file() else b""
    if suffix in (".txt", ".model", "") and head.startswith(b"tree\n"):
        return "lightgbm"
    if suffix == ".json" and b'"learner"' in path.read_bytes()[:4096]:
        return "xgboost"
    raise BadRequest(
        f"cannot tell the flavor of {path.name}; pass --flavor with one of {', '.join(FLAVORS)} "
        "(.joblib/.pkl: sklearn, .onnx: onnx, .json/.ubj: xgboost, .txt: lightgbm, .py: python)"
    )


def load_runtime(
    flavor: str, path: Path, signature: Signature | None = None, **options: Any
) -> Runtime:
    """Load the model file at ``path`` with the runtime of ``flavor``."""
    cls = runtime_class(flavor)
    return cls.load(Path(path), signature, **options)
