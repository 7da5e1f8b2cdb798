"""Whether a model copes with missing values, found at registration by asking it.

A model's own tags do not say: a pipeline that imputes its inputs first (``SimpleImputer``)
is tagged as refusing them, and an encoder that ignores categories it never saw takes a
missing text as one. What the model was found to take goes into its signature, and requests
with missing values are then let through to it (or refused by feature and row).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from modelpilot.registry.signature import Signature
from modelpilot.runtimes.base import Runtime
from modelpilot.serving.inputs import MISSING_TEXT


def with_what_it_copes_with(
    runtime: Runtime, signature: Signature, frame: pd.DataFrame, rows: np.ndarray
) -> Signature:
    """``signature`` saying whether the model takes missing numbers and missing text (see
    ``allow_nan`` and ``MISSING_TEXT``), as found by asking it."""
    if not signature.allow_nan and _copes_with_missing(runtime, signature, frame, rows):
        signature = replace(signature, allow_nan=True)
    if signature.text_features and _copes_with_missing_text(runtime, signature, rows):
        signature = replace(signature, extra={**signature.extra, MISSING_TEXT: True})
    return signature


def _copes_with_missing_text(runtime: Runtime, signature: Signature, rows: np.ndarray) -> bool:
    """Whether the model predicts on rows whose text features are missing (None), as one
    that imputes them does (``SimpleImputer(strategy="constant")``), or an encoder that takes
    None as a category or ignores what it never saw. Tried as ``_copes_with_missing`` does:
    on the reference's ``rows`` with missing text, then on a few with all their text made
    missing, chosen with all their numbers (a model refusing missing numbers is not one
    refusing missing text)."""
    text = np.array([kind == "BYTES" for kind in signature.feature_datatypes or ()])
    missing = pd.isna(rows)
    own = rows[(missing & text).any(axis=1)][:5].copy()
    own[pd.isna(own) & text] = None
    complete = ~(missing & ~text).any(axis=1)
    blank = (rows[complete] if complete.any() else rows)[:3].copy()
    blank[:, text] = None
    output = signature.main_output
    wanted = [output.name] if output is not None else []
    return _predicts_on_any(runtime, signature, [own, blank] if len(own) else [blank], wanted)


def _predicts_on_any(
    runtime: Runtime, signature: Signature, tries: list[np.ndarray], wanted: list[str]
) -> bool:
    """Whether the model predicts on one of ``tries`` (its rows) without raising."""
    for sample in tries:
        try:
            runtime.predict({signature.inputs[0].name: sample}, wanted)
        except Exception:
            continue
        return True
    return False


def _copes_with_missing(
    runtime: Runtime, signature: Signature, frame: pd.DataFrame, rows: np.ndarray
) -> bool:
    """Whether the model predicts on rows with missing numbers, which its own tags may not
    say: a pipeline that imputes them first (``SimpleImputer``) is tagged as refusing them.
    ``rows`` are ``frame``'s as the model is given them.

    Tried on the reference's own rows with missing values if it has any, then on a few of
    its rows with every number missing. A model that copes with them in some features only
    is let through; it refuses the others itself, and the client hears why."""
    numbers = [i for i, (_, c) in enumerate(frame.items()) if pd.api.types.is_numeric_dtype(c)]
    if not numbers:
        return False
    rows = rows.astype(np.float64) if rows.dtype.kind in "iub" else rows
    holes = frame.iloc[:, numbers].isna().to_numpy().any(axis=1)
    tries = [rows[holes][:5]] if holes.any() else []
    blank = rows[:3].copy()
    blank[:, numbers] = np.nan
    tries.append(blank)
    output = signature.main_output
    wanted = [output.name] if output is not None else []
    return _predicts_on_any(runtime, signature, tries, wanted)
