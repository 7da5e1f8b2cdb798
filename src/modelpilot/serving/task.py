"""A model's task at registration, classification or regression: stated by its owner, told by
the model, or guessed from what it answers and from the reference's target; and the stated
quality figures that its task never computes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from modelpilot.errors import BadRequest, InvalidInput
from modelpilot.registry.quality import computed_metrics, stated_metrics
from modelpilot.registry.signature import TASKS, Signature


def with_task(
    signature: Signature, task: str | None, labels: pd.Series | None, flavor: str
) -> tuple[Signature, str | None]:
    """``signature`` with the task ``task`` states (``register --task``), if any, in its
    ``extra``; else with the one the target tells, where the model's whole-number answers
    leave it a guess. Beside it, what to tell the owner of a guess that stands.

    A model that names no classes and answers whole numbers is taken for a classifier (the
    clusters of KMeans, the codes of a rule): a ``.py`` regressor of counts was watched as
    one class per value, with accuracy and F1 instead of MAE and RMSE, and nothing said."""
    if task is not None:
        return _stated(signature, task), None
    if not guessed(signature):
        return signature, None
    known = labels.dropna() if labels is not None else None
    if known is not None and _fractional(known):
        return replace(signature, extra={**signature.extra, "task": "regression"}), None
    # Said where the guess decides what is scored (a target), or the whole numbers may be
    # any .py model's way of answering; a scikit-learn model of whole numbers and no
    # classes is one of clusters (KMeans) or outliers (1 and -1), whose values are classes.
    if known is None and flavor != "python":
        return signature, None
    return signature, _guessed_note(signature, known, flavor)


def _fractional(labels: pd.Series) -> bool:
    """Whether ``labels`` are numbers, not all whole: no classes of a model that answers
    whole numbers (151.5 of one that answers 151 or 152), but a regression's target."""
    numbers = pd.to_numeric(labels, errors="coerce")
    return bool(len(numbers)) and bool(numbers.notna().all()) and not (numbers % 1 == 0).all()


def guessed(signature: Signature) -> bool:
    """Whether the task of ``signature`` is a guess from its whole-number prediction: nothing
    states it, and the model names no classes."""
    output = signature.main_output
    return (
        signature.extra.get("task") not in TASKS
        and "classes" not in signature.extra
        and output is not None
        and output.datatype.startswith(("INT", "UINT"))
    )


def _stated(signature: Signature, task: str) -> Signature:
    """``signature`` whose task is ``task``; BadRequest for no task, InvalidInput for one
    its prediction cannot be watched as."""
    if task not in TASKS:
        raise BadRequest(f"--task takes {' or '.join(TASKS)}, not {task!r}")
    output = signature.main_output
    if output is None:
        return signature
    classes = signature.extra.get("classes")
    if task == "regression" and classes:
        shown = ", ".join(repr(c) for c in classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise InvalidInput(
            f"--task regression: the model names its classes ({shown}), so it is a "
            "classifier, whose predictions are labels: leave --task out"
        )
    if task == "regression" and output.datatype in ("BYTES", "BOOL"):
        kind = "text" if output.datatype == "BYTES" else "booleans"
        raise InvalidInput(
            f"--task regression: the model's prediction ({output.name!r}) is {kind}, not "
            "numbers, which a regression is scored on: leave --task out"
        )
    if task == "classification" and len(output.shape) > 1 and output.shape[1] != 1:
        raise InvalidInput(
            f"--task classification: the model's prediction ({output.name!r}) is several "
            "values a row, and a classifier's is one label a row: leave --task out"
        )
    return replace(signature, extra={**signature.extra, "task": task})


def _guessed_note(signature: Signature, labels: pd.Series | None, flavor: str) -> str:
    """What registration says of a model taken for a classifier by its whole numbers, and
    how its owner says it is a regressor."""
    output = signature.main_output
    assert output is not None, "a guess is made of a prediction"
    values = ""
    if labels is not None and len(labels):
        count = labels.astype(str).nunique()
        values = f"; the target holds {count} distinct value{'s' if count != 1 else ''}"
    attribute = ""
    if flavor == "python":
        attribute = ', or give its class the attribute task = "regression"'
    return (
        f"the model's prediction {output.name!r} is whole numbers ({output.datatype}) and it "
        "names no classes, so it is watched as a classifier: each value a class, labels "
        f"scored by accuracy and F1{values}. If it is a regressor (a count, a price in whole "
        f"units), register it with --task regression{attribute}, to have MAE and RMSE"
    )


def refuse_uncomputed_metrics(metadata: Mapping[str, Any], signature: Signature) -> None:
    """InvalidInput if ``metadata`` states a quality figure that the model's task never
    computes (``auc`` of a regressor, ``rmse`` of a classifier): it was kept and exported as
    a reference figure, with no live one ever to compare, and nothing said."""
    stated = stated_metrics(metadata)
    computed = computed_metrics(signature)
    wrong = [key for key in stated if key not in computed]
    if not wrong:
        return
    listed = ", ".join(f"{key}={stated[key]!r}" for key in wrong)
    regressor = signature.task == "regression"
    why = ""
    if not regressor and "auc" in wrong:
        why = " (AUC needs the probabilities of classes the model names, which it does not give)"
    hint = ""
    if guessed(signature) and not set(wrong) <= {"auc"}:
        hint = "; if the model is a regressor, register it with --task regression"
    raise InvalidInput(
        f"metadata {listed}: the model is a {'regressor' if regressor else 'classifier'}, "
        f"whose live labels are scored by {_listed(computed, 'and')}{why}, so "
        f"{_listed(wrong, 'and')} would never be judged: state {_listed(computed, 'or')}, or "
        f"leave {'it' if len(wrong) == 1 else 'them'} out{hint}"
    )


def _listed(names: Sequence[str], last: str) -> str:
    """``a, b and c`` (or ``a, b or c``)."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"
