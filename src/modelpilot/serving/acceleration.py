"""Choosing the fastest runtime that gives the same answers: ONNX for tabular models.

The first load of a scikit-learn, XGBoost or LightGBM version converts it to ONNX, checks
parity on the version's reference sample (or, without one, on synthetic rows built from its
signature), and caches the converted graph, ONNX Runtime's optimized graph and the verdict
next to the artifact. Later loads, in this process or another, reuse all three. A version that
fails to convert or to agree keeps its original runtime, and the verdict says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.errors import ArtifactError, MissingExtra, clipped
from modelpilot.registry.artifacts import sha256_of
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Runtime
from modelpilot.runtimes.convert import (
    ConversionError,
    ConvertedRuntime,
    Parity,
    check_parity,
    converter_for,
)
from modelpilot.runtimes.onnx import OnnxRuntime
from modelpilot.serving.inputs import takes_missing_text

try:
    import fcntl
except ImportError:  # Windows: workers may then convert a version each
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

CONVERTED = ".onnx"
OPTIMIZED = ".ort.onnx"
VERDICT = ".onnx.json"
LOCK = ".onnx.lock"
SYNTHETIC_ROWS = 256


def accelerate(registry: Registry, version: ModelVersion, original: Runtime) -> Runtime:
    """The runtime to serve ``version`` with: converted if it passed parity, else original."""
    width = version.signature.n_features
    if not version.signature.is_tabular or width is None:
        return original
    conversion = converter_for(original, width)
    if conversion is None:
        return original
    convert, dtypes = conversion
    # Quietly: a cache found wanting is looked at again below, and said so then.
    cached = _from_cache(registry, version, original, quiet=True)
    if cached is not None:
        return cached
    # Workers started together would each convert the same version, for seconds each: one
    # converts while the others wait for it, then take what it cached.
    with _held(derived_path(registry, version, LOCK)):
        cached = _from_cache(registry, version, original)
        if cached is not None:
            return cached
        return _converted(registry, version, original, convert, dtypes, width)


def _from_cache(
    registry: Registry, version: ModelVersion, original: Runtime, *, quiet: bool = False
) -> Runtime | None:
    """What the cached verdict says to serve with (the cached graph, or ``original``), or
    None when there is no verdict, it cannot be read, or its graph does not load: convert
    then. ``quiet``: without warning of the last two."""
    store = registry.artifacts
    sha, variant = version.artifact_sha256, variant_of(version)
    converted = store.derived_path(sha, variant + CONVERTED)
    optimized = store.derived_path(sha, variant + OPTIMIZED)
    verdict_path = store.derived_path(sha, variant + VERDICT)
    verdict = _read_verdict(verdict_path, version, quiet)
    if verdict is None:
        return None
    if not verdict.get("ok"):
        # (A verdict stored before reasons were cut to a line may hold a whole graph.)
        reason = _in_a_line(str(verdict.get("reason", "")))
        logger.info("%s keeps %s: %s", version, original.flavor, reason)
        return original
    if verdict.get("graph_sha256") is None:
        # Cached by a release from before graphs were checked by their hash: nothing failed,
        # but the graph cannot be vouched for; checked again once, and recorded with it.
        if not quiet:
            logger.info(
                "%s: its ONNX graph was cached by an earlier release, which did not record "
                "the graph's hash; converting and checking it again (once, after an upgrade)",
                version,
            )
        return None
    try:
        _check_cached(verdict, converted, optimized)
        fast = ConvertedRuntime(_load(converted, optimized), version.signature)
    except (ConversionError, ArtifactError, OSError) as exc:
        if not quiet:
            logger.warning(
                "%s: the cached ONNX graph failed to load (%s); converting again", version, exc
            )
        return None
    made_again = _hash(optimized)
    if made_again != verdict.get("optimized_sha256"):  # from the graph just checked
        verdict["optimized_sha256"] = made_again
        store.write_derived(sha, variant + VERDICT, json.dumps(verdict).encode())
    return _with_missing_values(fast, original, verdict.get("missing_values") == "onnx")


def _read_verdict(path: Path, version: ModelVersion, quiet: bool) -> dict[str, Any] | None:
    """The cached verdict, or None if there is none or it cannot be read.

    A damaged record (cut short, overwritten) is treated as absent, so that the version is
    converted and checked again and the record written anew: read as it was, it failed every
    load of the version with a JSONDecodeError that blamed the artifact's library version.
    """
    try:
        verdict = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError
        why = f"{type(exc).__name__}: {exc}"
    else:
        if isinstance(verdict, dict):
            return verdict
        why = f"a JSON {type(verdict).__name__}, not an object"
    if not quiet:
        logger.warning(
            "%s: its cached ONNX parity record %s cannot be read (%s); converting again",
            version,
            path.name,
            why,
        )
    return None


@contextlib.contextmanager
def _held(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created) between processes, where the OS has flock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        if fcntl is not None:
            fcntl.flock(file, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _converted(
    registry: Registry,
    version: ModelVersion,
    original: Runtime,
    convert: Callable[[Any], bytes],
    dtypes: Sequence[Any],
    width: int,
) -> Runtime:
    """Convert ``version``, check parity, cache the graphs and the verdict; the runtime to
    serve it with."""
    store = registry.artifacts
    sha, variant = version.artifact_sha256, variant_of(version)
    converted = store.derived_path(sha, variant + CONVERTED)
    optimized = store.derived_path(sha, variant + OPTIMIZED)
    try:
        sample, holes = _sample(registry, version, width)
    except ConversionError as exc:
        _record(registry, version, Parity(False, 0, float("inf"), 0, _said(exc)), None, None)
        logger.info("%s keeps %s: %s", version, original.flavor, _said(exc))
        return original
    # Missing values are checked on their own rows, made from the sample; text models' rows
    # are not, so their missing numbers (and missing text, which no string tensor holds)
    # always go to the original.
    missing = version.signature.allow_nan or takes_missing_text(version.signature)
    untested_nan = missing and holes is None
    reasons = []
    for dtype in dtypes:
        name = np.dtype(dtype).name
        try:
            store.write_derived(sha, variant + CONVERTED, convert(dtype))
            optimized.unlink(missing_ok=True)
            fast = ConvertedRuntime(_load(converted, optimized), version.signature)
        except (ConversionError, ArtifactError, MissingExtra, OSError) as exc:
            reasons.append(f"{name}: {_said(exc)}")
            continue
        parity = check_parity(original, fast, sample)
        if parity.ok:
            # Missing values are checked on their own: a graph may agree on complete rows and
            # route NaN differently (scikit-learn's trees send it where most samples went).
            nan_ok = not untested_nan and (holes is None or check_parity(original, fast, holes).ok)
            _record(
                registry,
                version,
                parity,
                name,
                "onnx" if nan_ok else "original",
                {"graph_sha256": _hash(converted), "optimized_sha256": _hash(optimized)},
            )
            logger.info(
                "%s served by ONNX Runtime (%s; parity on %d rows, max |diff| %.2g)%s",
                version,
                name,
                parity.rows,
                parity.max_abs_diff,
                "" if nan_ok else f"; rows with missing values go to {original.flavor}",
            )
            return _with_missing_values(fast, original, nan_ok)
        fast.close()
        reasons.append(f"{name}: {parity.reason}")
    reason = "; ".join(reasons)
    _record(registry, version, Parity(False, len(sample), float("inf"), 0, reason), None, None)
    logger.info("%s keeps %s: %s", version, original.flavor, reason)
    return original


def variant_of(version: ModelVersion) -> str:
    """What, besides the artifact, decides its conversion and verdict: the signature (the
    graph's inputs; text or numbers; missing values) and whether a reference sample checks
    the graph. Versions of one file that differ there keep their graphs and verdicts apart
    (one registered without a reference failed and turned ONNX off for the other)."""
    form = {"signature": version.signature.to_dict(), "reference": version.has_reference}
    digest = hashlib.sha256(json.dumps(form, sort_keys=True, default=str).encode())
    return "." + digest.hexdigest()[:12]


def derived_path(registry: Registry, version: ModelVersion, suffix: str) -> Path:
    """Where ``version``'s converted graph (``CONVERTED``), ONNX Runtime's optimized graph
    (``OPTIMIZED``) or the verdict (``VERDICT``) is cached."""
    return registry.artifacts.derived_path(version.artifact_sha256, variant_of(version) + suffix)


def _with_missing_values(fast: ConvertedRuntime, original: Runtime, nan_ok: bool) -> Runtime:
    """``fast``, handing rows with missing values to ``original`` unless the graph agreed."""
    if nan_ok:
        original.close()
    else:
        fast.fallback = original
    return fast


def _load(converted: Any, optimized: Any) -> OnnxRuntime:
    if optimized.exists():
        runtime = OnnxRuntime.load(optimized, optimized=True)
    else:
        runtime = OnnxRuntime.load(converted, save_optimized=optimized)
    assert isinstance(runtime, OnnxRuntime)
    return runtime


def _check_cached(verdict: dict[str, Any], converted: Path, optimized: Path) -> None:
    """ArtifactError unless the cached graph is the one the verdict was given on: the
    artifact is checked on every load, and a graph swapped beside it (another version's)
    answered for it unseen. An optimized graph that does not match is made again from it."""
    recorded = verdict.get("graph_sha256")
    if recorded is None:
        raise ArtifactError("its verdict predates checking the graph's hash")
    if not converted.exists() or _hash(converted) != recorded:
        raise ArtifactError("the graph does not hash to what its verdict recorded")
    if optimized.exists() and _hash(optimized) != verdict.get("optimized_sha256"):
        logger.warning("%s does not hash to what was recorded; making it again", optimized.name)
        optimized.unlink()


def _hash(path: Path) -> str | None:
    return sha256_of(path)[0] if path.exists() else None


def _record(
    registry: Registry,
    version: ModelVersion,
    parity: Parity,
    dtype: str | None,
    missing_values: str | None = None,
    hashes: dict[str, str | None] | None = None,
) -> None:
    data: dict[str, Any] = {
        **asdict(parity),
        "dtype": dtype,
        "missing_values": missing_values,
        **(hashes or {}),
    }
    if not np.isfinite(data["max_abs_diff"]):
        data["max_abs_diff"] = None
    suffix = variant_of(version) + VERDICT
    registry.artifacts.write_derived(version.artifact_sha256, suffix, json.dumps(data).encode())


def _sample(
    registry: Registry, version: ModelVersion, width: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows for the parity check, and for models that take missing values, the same rows
    with a tenth of their values blanked.

    The rows are the reference sample when there is one, else rows spread like standard
    normals.
    """
    sample = None
    if version.has_reference:
        profile = registry.reference_profile(version.model, version.version)
        if profile is not None and profile.sample:
            rows = profile.sample_array()
            if version.signature.feature_datatypes:
                return _text_sample(rows, version.signature.feature_datatypes), None
            if rows.dtype.kind == "f" and rows.shape[1] == width:
                finite: np.ndarray = rows[np.isfinite(rows).all(axis=1)]
                if len(finite):
                    sample = finite
    if version.signature.feature_datatypes:
        raise ConversionError("no reference sample to check the graph on (text is not made up)")
    rng = np.random.default_rng(0)
    if sample is None:
        sample = rng.normal(size=(SYNTHETIC_ROWS, width))
    if not version.signature.allow_nan:
        return sample, None
    holes = sample.copy()
    holes[rng.random(holes.shape) < 0.1] = np.nan
    return sample, holes


UNSEEN = "\x00unseen"
"""A text value no reference has: the graph must treat it as the original does."""


def _text_sample(rows: np.ndarray, datatypes: tuple[str, ...]) -> np.ndarray:
    """The reference rows of text beside numbers as the server passes them on (numbers as
    floats, text as str), complete ones only, followed by the same rows with every text
    feature a value the model never saw: an encoder that ignores unknown categories must do
    so in the graph too, and one that refuses them makes the check fail."""
    text = [i for i, kind in enumerate(datatypes) if kind == "BYTES"]
    kept = []
    for row in rows:
        values = list(row)
        if any(values[i] is None or not isinstance(values[i], str) for i in text):
            continue
        try:
            numbers = {i: float(v) for i, v in enumerate(values) if i not in text}
        except (TypeError, ValueError):
            continue
        if not all(np.isfinite(list(numbers.values()))):
            continue
        values = [numbers.get(i, v) for i, v in enumerate(values)]
        kept.append(values)
    if not kept:
        raise ConversionError("the reference sample has no complete rows to check the graph on")
    sample = np.empty((len(kept), len(datatypes)), dtype=object)
    sample[:] = kept
    unseen = sample.copy()
    unseen[:, text] = UNSEEN
    return np.concatenate([sample, unseen])


def _said(exc: BaseException) -> str:
    """Why a conversion failed, in a line: skl2onnx's complaint about a node it could not make
    lists every attribute array of the trees (941 KB, 31,677 lines for a small
    HistGradientBoostingClassifier), which was logged at every start and stored as the
    verdict's reason."""
    return _in_a_line(str(exc)) or type(exc).__name__


def _in_a_line(text: str) -> str:
    """``text``'s first line, clipped."""
    lines = text.strip().splitlines()
    return clipped(lines[0], 400) if lines else ""
