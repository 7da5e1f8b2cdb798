"""Whether a model copes with missing values, found at registration by asking it.

A model's own tags do not say: a pipeline that imputes its inputs first (``SimpleImputer``)
is tagged as refusing them, and an encoder that ignores categories it never saw takes a
missing text as one. What the model was found to take goes into its signature, and requests
with missing values are then let through to it (or refused by feature and row), a missing
text as the model knows it (NaN, or None).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from modelpilot.registry.signature import Signature
from modelpilot.runtimes.base import Runtime
from modelpilot.serving.inputs import MISSING_TEXT, MISSING_TEXT_AS_NONE


def with_what_it_copes_with(
    runtime: Runtime, signature: Signature, frame: pd.DataFrame, rows: np.ndarray
) -> Signature:
    """``signature`` saying whether the model takes missing numbers and missing text, and
    what it knows a missing text as (see ``allow_nan``, ``MISSING_TEXT`` and
    ``MISSING_TEXT_AS_NONE``), as found by asking it."""
    if not signature.allow_nan and _copes_with_missing(runtime, signature, frame, rows):
        signature = replace(signature, allow_nan=True)
    if signature.text_features:
        known = _missing_text_it_knows(runtime, signature, rows)
        if known is not _REFUSED:
            extra = {**signature.extra, MISSING_TEXT: True}
            if known is None:
                extra[MISSING_TEXT_AS_NONE] = True
            signature = replace(signature, extra=extra)
    return signature


_REFUSED = "refused"
"""What ``_missing_text_it_knows`` says of a model that fails on missing text."""

UNSEEN_TEXT = "\x00modelpilot: a text no model was fitted on\x00"
"""A text feature's value that no model knows: its answers for it are those for an unknown
category, which a missing value that the model imputes is not."""


def _missing_text_it_knows(
    runtime: Runtime, signature: Signature, rows: np.ndarray
) -> float | str | None:
    """What the model knows a missing text as, NaN or None, or ``_REFUSED`` if it fails on
    both. Served as what it knows: scikit-learn's ``SimpleImputer`` finds NaN, and passes
    None on as a category it never saw, where an encoder fitted on None (a DataFrame of
    records, or Parquet read by pandas 2) knows None alone.

    Asked on the reference's ``rows`` whose text is missing, then on a few with all their
    text missing, chosen with all their numbers (a model refusing missing numbers is not
    one refusing missing text); its answers are compared with those for the same rows with
    a text it never saw. The one of NaN and None whose answers differ from those is the one
    it imputes; where neither differs (an encoder that ignores unknown categories, and
    takes a missing value for one), NaN, as pandas reads an empty cell."""
    text = np.array([kind == "BYTES" for kind in signature.feature_datatypes or ()])
    missing = pd.isna(rows)
    own = rows[(missing & text).any(axis=1)][:5]
    complete = ~(missing & ~text).any(axis=1)
    blank = (rows[complete] if complete.any() else rows)[:3]
    output = signature.main_output
    wanted = [output.name] if output is not None else []
    if signature.probabilities is not None:
        wanted.append(signature.probabilities.name)
    unseen = _answers(runtime, signature, _with_text(blank, text, UNSEEN_TEXT), wanted)
    predicted: list[float | None] = []  # (the markers it predicts on, in order)
    for marker in (np.nan, None):
        tries = [_with_missing_text(own, text, marker)] if len(own) else []
        tries.append(_with_text(blank, text, marker))
        if not any(_answers(runtime, signature, t, wanted) is not None for t in tries):
            continue
        answers = _answers(runtime, signature, tries[-1], wanted)
        if answers is not None and (unseen is None or not _same(answers, unseen)):
            return marker
        predicted.append(marker)
    return predicted[0] if predicted else _REFUSED


def _with_missing_text(rows: np.ndarray, text: np.ndarray, marker: float | None) -> np.ndarray:
    """``rows`` with their missing text as ``marker``."""
    rows = rows.copy()
    rows[pd.isna(rows) & text] = marker
    return rows


def _with_text(rows: np.ndarray, text: np.ndarray, value: object) -> np.ndarray:
    """``rows`` with every text feature ``value``."""
    rows = rows.copy()
    rows[:, text] = value
    return rows


def _answers(
    runtime: Runtime, signature: Signature, rows: np.ndarray, wanted: list[str]
) -> dict[str, np.ndarray] | None:
    """The model's outputs ``wanted`` on ``rows``, or None if it raised."""
    try:
        return runtime.predict({signature.inputs[0].name: rows}, wanted)
    except Exception:
        return None


def _same(one: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> bool:
    """Whether two sets of answers agree (probabilities to a rounding)."""
    for name, values in one.items():
        a, b = np.asarray(values), np.asarray(other.get(name))
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            if not np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True):
                return False
        elif not np.array_equal(a, b):
            return False
    return True


def _predicts_on_any(
    runtime: Runtime, signature: Signature, tries: list[np.ndarray], wanted: list[str]
) -> bool:
    """Whether the model predicts on one of ``tries`` (its rows) without raising."""
    return any(_answers(runtime, signature, sample, wanted) is not None for sample in tries)


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
