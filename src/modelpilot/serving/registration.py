"""Turning a model file into a registered version: flavor, signature, reference profile."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.signature import Signature
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.flavors import detect_flavor, load_runtime
from modelpilot.tabular import has_names, read_table


def register_model(
    registry: Registry,
    name: str,
    artifact: Path,
    *,
    flavor: str | None = None,
    reference: Path | pd.DataFrame | np.ndarray | None = None,
    aliases: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
    signature: Signature | None = None,
) -> ModelVersion:
    """Inspect ``artifact``, check that it predicts, and store it as the next version.

    The model is loaded here, in the registering process: for pickles that runs the file's
    code, which is why registration is something the owner of the file does, and why servers
    later load only sha256-checked copies from the registry. With ``reference`` data (a table
    of training rows, or its path) the version gets a reference profile for drift, and the
    signature's dtypes and feature names come from that data.
    """
    artifact = Path(artifact)
    if not artifact.is_file():
        raise BadRequest(f"no such model file: {artifact}")
    flavor = flavor or detect_flavor(artifact)
    runtime = load_runtime(flavor, artifact)
    frame = _reference_frame(reference)
    example = None
    feature_names = None
    if frame is not None:
        if has_names(frame):
            feature_names = [str(c) for c in frame.columns]
        example = _numeric(frame)
    if signature is None:
        signature = runtime.infer_signature(example=example, feature_names=feature_names)
    if (
        frame is not None
        and signature.feature_names
        and feature_names
        and list(signature.feature_names) != feature_names
    ):
        missing = [n for n in signature.feature_names if n not in feature_names]
        if missing:
            raise InvalidInput(
                f"the reference data lacks the model's features {missing}; "
                f"its columns are {feature_names}"
            )
        # The model's column order wins; reorder the reference to match it.
        frame = frame[list(signature.feature_names)]
    profile = None
    meta: dict[str, Any] = dict(metadata or {})
    if frame is not None:
        profile = ReferenceProfile.from_data(
            frame, feature_names=list(signature.feature_names or feature_names or []) or None
        )
        meta.setdefault("reference_rows", len(frame))
        meta.setdefault("training_data_sha256", _frame_hash(frame))
    runtime.close()
    return registry.register_version(
        name,
        artifact,
        flavor=flavor,
        signature=signature,
        metadata=meta,
        reference=profile,
        aliases=aliases,
    )


def _reference_frame(reference: Path | pd.DataFrame | np.ndarray | None) -> pd.DataFrame | None:
    if reference is None:
        return None
    if isinstance(reference, pd.DataFrame):
        frame = reference
    elif isinstance(reference, np.ndarray):
        frame = pd.DataFrame(reference if reference.ndim == 2 else reference.reshape(-1, 1))
    else:
        frame = read_table(Path(reference))
    if frame.empty:
        raise InvalidInput("the reference data has no rows")
    return frame


def _numeric(frame: pd.DataFrame) -> np.ndarray | None:
    """The reference rows as a 2-D array the model can take, when they are all numeric."""
    if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        return frame.to_numpy()
    return None


def _frame_hash(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
