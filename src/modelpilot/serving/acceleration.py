"""Choosing the fastest runtime that gives the same answers: ONNX for scikit-learn models.

The first load of a scikit-learn version converts it to ONNX, checks parity on the version's
reference sample (or, without one, on synthetic rows built from its signature), and caches
the converted graph, ONNX Runtime's optimized graph and the verdict next to the artifact.
Later loads, in this process or another, reuse all three. A version that fails to convert or
to agree keeps its original runtime, and the verdict says why.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

import numpy as np

from modelpilot.errors import ArtifactError
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Runtime
from modelpilot.runtimes.convert import (
    ConversionError,
    ConvertedRuntime,
    Parity,
    check_parity,
    sklearn_to_onnx,
)
from modelpilot.runtimes.onnx import OnnxRuntime
from modelpilot.runtimes.sklearn import SklearnRuntime

logger = logging.getLogger(__name__)

CONVERTED = ".onnx"
OPTIMIZED = ".ort.onnx"
VERDICT = ".onnx.json"
SYNTHETIC_ROWS = 256


def accelerate(registry: Registry, version: ModelVersion, original: Runtime) -> Runtime:
    """The runtime to serve ``version`` with: converted if it passed parity, else original."""
    if not isinstance(original, SklearnRuntime) or not version.signature.is_tabular:
        return original
    width = version.signature.n_features
    if width is None:
        return original
    store = registry.artifacts
    sha = version.artifact_sha256
    converted = store.derived_path(sha, CONVERTED)
    optimized = store.derived_path(sha, OPTIMIZED)
    verdict_path = store.derived_path(sha, VERDICT)
    if verdict_path.exists():
        verdict = json.loads(verdict_path.read_text())
        if not verdict.get("ok"):
            logger.info("%s keeps scikit-learn: %s", version, verdict.get("reason"))
            return original
        try:
            fast = ConvertedRuntime(_load(converted, optimized), version.signature)
        except (ConversionError, ArtifactError, OSError) as exc:
            logger.warning(
                "%s: the cached ONNX graph failed to load (%s); converting again", version, exc
            )
        else:
            original.close()
            return fast
    sample = _sample(registry, version, width)
    reasons = []
    # Doubles first (exact for linear models); then floats, which is what scikit-learn's trees
    # compare internally, so tree ensembles agree exactly in float and not always in double.
    for dtype in (np.float64, np.float32):
        name = np.dtype(dtype).name
        try:
            store.write_derived(sha, CONVERTED, sklearn_to_onnx(original.model, width, dtype))
            optimized.unlink(missing_ok=True)
            fast = ConvertedRuntime(_load(converted, optimized), version.signature)
        except (ConversionError, ArtifactError, OSError) as exc:
            reasons.append(f"{name}: {exc}")
            continue
        parity = check_parity(original, fast, sample)
        if parity.ok:
            _record(registry, version, parity, name)
            logger.info(
                "%s served by ONNX Runtime (%s; parity on %d rows, max |diff| %.2g)",
                version,
                name,
                parity.rows,
                parity.max_abs_diff,
            )
            original.close()
            return fast
        fast.close()
        reasons.append(f"{name}: {parity.reason}")
    reason = "; ".join(reasons)
    _record(registry, version, Parity(False, len(sample), float("inf"), 0, reason), None)
    logger.info("%s keeps scikit-learn: %s", version, reason)
    return original


def _load(converted: Any, optimized: Any) -> OnnxRuntime:
    if optimized.exists():
        runtime = OnnxRuntime.load(optimized, optimized=True)
    else:
        runtime = OnnxRuntime.load(converted, save_optimized=optimized)
    assert isinstance(runtime, OnnxRuntime)
    return runtime


def _record(registry: Registry, version: ModelVersion, parity: Parity, dtype: str | None) -> None:
    data: dict[str, Any] = {**asdict(parity), "dtype": dtype}
    if not np.isfinite(data["max_abs_diff"]):
        data["max_abs_diff"] = None
    registry.artifacts.write_derived(version.artifact_sha256, VERDICT, json.dumps(data).encode())


def _sample(registry: Registry, version: ModelVersion, width: int) -> np.ndarray:
    """The reference sample when there is one, else rows spread like standard normals."""
    if version.has_reference:
        profile = registry.reference_profile(version.model, version.version)
        if profile is not None and profile.sample:
            sample = profile.sample_array()
            if sample.dtype.kind == "f" and sample.shape[1] == width:
                finite: np.ndarray = sample[np.isfinite(sample).all(axis=1)]
                if len(finite):
                    return finite
    rng = np.random.default_rng(0)
    return rng.normal(size=(SYNTHETIC_ROWS, width))
