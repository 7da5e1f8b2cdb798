"""Turning a model file into a registered version: flavor, signature, reference profile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelpilot.errors import BadRequest, InvalidInput, ModelPilotError
from modelpilot.protocol.datatypes import datatype_of
from modelpilot.protocol.types import Tensor
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.quality import refuse_unjudgeable_metrics
from modelpilot.registry.signature import Signature
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Runtime
from modelpilot.runtimes.flavors import detect_flavor, load_runtime
from modelpilot.serving.inputs import column_inputs, column_names, declared_text
from modelpilot.serving.missing_values import with_what_it_copes_with
from modelpilot.serving.prediction_output import UNDECLARED_OUTPUT, refuse_several_labels
from modelpilot.serving.reference_outcomes import outcomes
from modelpilot.serving.reference_rows import (
    column_tensor,
    frame_hash,
    is_number,
    mixed_rows,
    numeric_rows,
    refuse_dates,
)
from modelpilot.serving.task import refuse_uncomputed_metrics, with_task
from modelpilot.serving.text_signature import with_text_features, with_text_of_the_model
from modelpilot.tabular import (
    MISSING_WORDS,
    decimals_as_numbers,
    has_names,
    read_table,
    refuse_nested,
    refuse_repeated,
)


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
    target: str | None = None,
    task: str | None = None,
) -> ModelVersion:
    """Inspect ``artifact``, check that it predicts, and store it as the next version.

    The model is loaded here, in the registering process: for pickles that runs the file's
    code, which is why registration is something the owner of the file does, and why servers
    later load only sha256-checked copies from the registry. With ``reference`` data (a table
    of training rows, or its path) the version gets a reference profile for drift, and the
    signature's dtypes and feature names come from that data. ``target`` names the label column
    of the reference data: it is left out of the features, and the version then also keeps its
    label distribution and the model's metrics on it (``reference_metrics``), against which
    live accuracy is judged. ``task`` (``classification`` or ``regression``) says what the
    model's prediction is, where its whole numbers would leave that a guess (``serving.task``).
    """
    refuse_unjudgeable_metrics(metadata or {})
    artifact = Path(artifact)
    if not artifact.is_file():
        raise BadRequest(f"no such model file: {artifact}")
    flavor = flavor or detect_flavor(artifact)
    runtime = load_runtime(flavor, artifact)
    frame = _reference_frame(reference, _text_columns(runtime, target))
    labels = None
    if target is not None:
        if frame is None:
            raise BadRequest("a target column needs reference data (--reference)")
        if target not in frame.columns:
            raise InvalidInput(
                f"the reference data has no column {target!r}; its columns are "
                f"{[str(c) for c in frame.columns]}"
            )
        labels = _missing_words_as_missing(frame[target], runtime.signature)
        frame = frame.drop(columns=[target])
    example = None
    feature_names = None
    left_out: list[str] = []
    if frame is not None:
        # The model's own columns first: an id beside them (a number) made the rows one
        # column too wide for it, where the README says such columns are left out.
        frame, left_out = _own_columns(runtime, frame)
        refuse_nested(frame, hint="leave it out of the reference")
        if has_names(frame):
            feature_names = [str(c) for c in frame.columns]
        example = numeric_rows(frame)
    # (A .py model that declares no signature, and is given no example to answer.)
    assumed = signature is None and example is None and runtime.output_assumed
    if signature is None:
        signature = _signature(runtime, example, feature_names, target)
    if frame is not None:
        frame = _model_columns(signature, frame, feature_names)
        _refuse_other_width(signature, frame, target)
    if frame is not None and signature.is_tabular and signature.inputs[0].datatype != "BYTES":
        # Of the model's own features only: a reference may hold other columns beside them.
        refuse_dates(frame)
        signature = with_text_features(runtime, signature, frame)
    elif frame is None and signature.is_tabular and signature.feature_datatypes is None:
        signature = with_text_of_the_model(runtime, signature)
    signature, guess = with_task(signature, task, labels, runtime.flavor)
    refuse_several_labels(signature)
    if assumed and "task" not in signature.extra:
        guess = UNDECLARED_OUTPUT
    refuse_uncomputed_metrics(metadata or {}, signature)
    profile = None
    meta: dict[str, Any] = dict(metadata or {})
    if frame is not None:
        signature, profile, meta = _profiled(runtime, signature, frame, labels, meta)
    if guess is not None:
        meta["monitoring_notes"] = [*meta.get("monitoring_notes", []), guess]
    if left_out and labels is None:
        meta["monitoring_notes"] = [_left_out(left_out), *meta.get("monitoring_notes", [])]
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


def _profiled(
    runtime: Runtime,
    signature: Signature,
    frame: pd.DataFrame,
    labels: pd.Series | None,
    meta: dict[str, Any],
) -> tuple[Signature, ReferenceProfile, dict[str, Any]]:
    """The reference ``frame`` (the model's columns, in its order) profiled: ``signature``
    with what the model was found to cope with, the profile with the model's predictions on
    the rows (and the ``labels``), and ``meta`` with the rows' count, hash and the metrics."""
    batch = None
    if signature.is_tabular:
        # The reference rows as the model is given them (allow_nan does not change that).
        rows = numeric_rows(frame) if signature.feature_datatypes is None else mixed_rows(frame)
        if rows is not None:
            signature = with_what_it_copes_with(runtime, signature, frame, rows)
            batch = [Tensor(signature.inputs[0].name, datatype_of(rows), rows.shape, rows)]
    elif column_inputs(signature) and has_names(frame):
        batch = [column_tensor(spec, frame[spec.name]) for spec in column_inputs(signature)]
    names = signature.feature_names  # else the frame's own: the model's inputs, if named
    profile = ReferenceProfile.from_data(frame, feature_names=list(names) if names else None)
    meta.setdefault("reference_rows", len(frame))
    meta.setdefault("training_data_sha256", frame_hash(frame))
    if batch is not None:
        profile, metrics, unscored = outcomes(runtime, signature, batch, profile, labels)
        if metrics:
            meta.setdefault("reference_metrics", metrics)
        if unscored:
            meta.setdefault("reference_unscored", unscored)
    # (Outcomes of a model that predicted are not profiled where each row has several.)
    several = batch is not None and profile.predictions is None
    notes = _unwatched(signature, batch is not None, labels is not None, several)
    if notes:
        meta["monitoring_notes"] = notes
    return signature, profile, meta


def _text_columns(runtime: Runtime, target: str | None = None) -> tuple[str, ...]:
    """The columns a reference CSV reads as text: the features the model was fitted on as
    text, the inputs it declares ``BYTES`` (a ``.py`` model's), and the ``target`` of a
    classifier of classes of text. Read as numbers, classes such as "007" and "010" became
    7 and 10, which the model never predicts, and "1" and "1.0" one class."""
    declared = declared_text(runtime.signature)
    classes = runtime.signature.extra.get("classes") or ()
    labels = [target] if target is not None and any(isinstance(c, str) for c in classes) else []
    return tuple(dict.fromkeys([*runtime.text_features(), *declared, *labels]))


def _missing_words_as_missing(labels: pd.Series, signature: Signature) -> pd.Series:
    """The labels of a classifier of text classes, with the words pandas reads as missing
    ("NA", "null"...: ``MISSING_WORDS``) missing again where they are none of its classes:
    its target is read from CSV as text (``_text_columns``), where only an empty cell is
    missing, and a label "NA" would otherwise be refused as a class it never predicts."""
    classes = signature.extra.get("classes") or ()
    if not any(isinstance(c, str) for c in classes):
        return labels
    words = MISSING_WORDS - {c for c in classes if isinstance(c, str)}
    missing = labels.isin(words)
    return labels.mask(missing) if missing.any() else labels


def _model_columns(
    signature: Signature, frame: pd.DataFrame, feature_names: list[str] | None
) -> pd.DataFrame:
    """The reference's columns that the model takes, in its order: its features, or the
    inputs it declares one per column; InvalidInput if it lacks some. A reference may hold
    other columns beside them (an id, a timestamp): they are left out."""
    wanted = column_names(signature)
    if not wanted or not feature_names or list(wanted) == feature_names:
        return frame
    missing = [n for n in wanted if n not in feature_names]
    if missing:
        what = "features" if signature.feature_names else "inputs"
        raise InvalidInput(
            f"the reference data lacks the model's {what} {missing}; "
            f"its columns are {feature_names}"
        )
    return frame[list(wanted)]


def _refuse_other_width(signature: Signature, frame: pd.DataFrame, target: str | None) -> None:
    """InvalidInput if the reference has more or fewer feature columns than the tabular
    model takes: a model fitted on an array names none of its features, so none of the
    reference's can be picked by name. Said here, of the model: said later of the rows, the
    message listed the reference's five columns as the four features the model takes."""
    spec = signature.inputs[0] if signature.is_tabular else None
    if spec is None or len(spec.shape) != 2 or spec.shape[1] < 0 or not has_names(frame):
        return
    width, columns = spec.shape[1], [str(c) for c in frame.columns]
    if len(columns) == width:
        return
    model = (
        f"the model takes {width} features by position ({_names(signature.feature_names)})"
        if signature.feature_names
        else f"the model takes {width} features by position and names none of them, so "
        "the reference's columns cannot be picked for it by name"
    )
    if len(columns) < width:
        fix = f"give the reference all {width} of the model's features, in its order"
    else:
        text = [c for c in columns if not is_number(frame[c])]
        extra = len(columns) - width
        fix = f"leave the {extra} column(s) the model does not take out of the reference"
        if len(text) == extra:
            fix += f" (its text column(s) {_names(text)}, perhaps)"
        elif target is None and extra == 1:
            fix += ", or if one column is the label, name it with --target COLUMN"
    raise InvalidInput(
        f"the reference data has {len(columns)} feature columns ({_names(columns)}); {model}: {fix}"
    )


def _names(names: Sequence[str]) -> str:
    """The first ten of ``names``, and how many more: a reference may have hundreds."""
    shown = ", ".join(repr(n) for n in names[:10])
    return shown + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def _own_columns(runtime: Runtime, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The reference's columns that the model names as its own (its features, or its inputs
    one per column), in its order, and the names of the others, which are left out; the
    frame as it is where the model names none, or the frame lacks some of them (which
    ``_model_columns`` then says)."""
    if not has_names(frame):
        return frame, []
    try:
        wanted = column_names(runtime.infer_signature())
    except ModelPilotError:  # (a model that needs an example to say what it takes)
        return frame, []
    columns = [str(c) for c in frame.columns]
    if not wanted or not set(wanted) <= set(columns) or list(wanted) == columns:
        return frame, []
    return frame[list(wanted)], [c for c in columns if c not in set(wanted)]


def _left_out(columns: list[str]) -> str:
    """What registration says of reference columns the model does not take, where no target
    was named: one of them may be the label, and without it the version keeps no metrics on
    the reference for live accuracy to be judged against."""
    if len(columns) == 1:
        return (
            f"the reference's column {columns[0]!r} is no feature of the model, left out of its "
            f"profile; if it is the label, name it with --target {columns[0]}, so that live "
            "accuracy is judged against the model's metrics on the reference"
        )
    named = ", ".join(repr(c) for c in columns[:5]) + (", ..." if len(columns) > 5 else "")
    return (
        f"the reference's columns {named} are no features of the model, left out of its "
        "profile; if one of them is the label, name it with --target COLUMN, so that live "
        "accuracy is judged against the model's metrics on the reference"
    )


def _unwatched(
    signature: Signature, predicted: bool, labelled: bool, several: bool = False
) -> list[str]:
    """What monitoring cannot watch of the model, said at registration rather than found
    missing on the dashboard later; ``several``: its prediction is several values a row (a
    regressor of several targets), which are neither profiled nor scored."""
    notes = []
    if not signature.is_tabular:
        inputs = ", ".join(s.name for s in signature.inputs)
        notes.append(
            "the drift of the model's input features is not watched: drift is watched on one "
            f"table of features, and the model declares inputs of its own ({inputs})"
            + ("; its predictions and accuracy are watched" if predicted else "")
        )
    if labelled and not predicted:
        notes.append(
            "the target column is unused: the model's answers on the reference could not be "
            "computed (its inputs are no named columns of it), so there are no reference "
            "metrics to judge live accuracy against"
        )
    output = signature.main_output
    if several and output is not None:
        unused = ", and the target column is unused (no reference metrics)" if labelled else ""
        notes.append(
            f"the drift of the model's predictions is not watched{unused}: its output "
            f"{output.name!r} gives several values a row, not one"
        )
    return notes


def _signature(
    runtime: Runtime,
    example: np.ndarray | None,
    feature_names: list[str] | None,
    target: str | None,
) -> Signature:
    """``runtime.infer_signature``; where the reference has one column more than the model
    takes, and no ``target`` was named, its error says how to leave the label column out:
    training data kept with its labels is the reference users most often have at hand."""
    try:
        return runtime.infer_signature(example=example, feature_names=feature_names)
    except InvalidInput as exc:
        if target is not None or example is None or example.ndim != 2:
            raise
        try:
            model = runtime.infer_signature()  # what the model alone says it takes
        except ModelPilotError:
            raise exc from None
        spec = model.inputs[0] if len(model.inputs) == 1 else None
        if spec is None or len(spec.shape) != 2 or spec.shape[1] != example.shape[1] - 1:
            raise
        extra = [n for n in feature_names or () if n not in (model.feature_names or ())]
        if len(extra) == 1 and model.feature_names:
            hint = f"if {extra[0]!r} is the label, name it with --target {extra[0]}"
        elif feature_names:
            hint = "if one column is the label, name it with --target COLUMN"
        else:  # --target names a column of the header
            hint = (
                "if one column is the label, give the reference a header and name the label "
                "with --target COLUMN, or leave the label out"
            )
        raise InvalidInput(f"{exc.message}; {hint}") from exc


def _reference_frame(
    reference: Path | pd.DataFrame | np.ndarray | None, text: Sequence[str]
) -> pd.DataFrame | None:
    """The reference rows; a CSV's columns the model took as ``text`` are read as text."""
    if reference is None:
        return None
    if isinstance(reference, pd.DataFrame):
        refuse_repeated(list(reference.columns), "the reference's columns")
        frame = decimals_as_numbers(reference)  # (as read_table does a file's)
    elif isinstance(reference, np.ndarray):
        frame = pd.DataFrame(reference if reference.ndim == 2 else reference.reshape(-1, 1))
    else:
        frame = read_table(Path(reference), text_columns=text)
    if frame.empty:
        raise InvalidInput("the reference data has no rows")
    return frame
