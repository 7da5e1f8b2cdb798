"""A version's prediction output, checked at registration: a classifier's is one label a row,
and a ``.py`` model that declares none has one registration cannot tell the kind of."""

from __future__ import annotations

from collections.abc import Sequence

from modelpilot.errors import InvalidInput
from modelpilot.registry.signature import LABEL_OUTPUTS, Signature


def refuse_several_labels(signature: Signature, width: int | None = None) -> None:
    """InvalidInput if ``signature`` is a classifier's whose prediction is several values a
    row (its output says so, or ``width``, the values a row it answered on the reference):
    a classifier's prediction is one label a row, counted by class and compared with a
    label. A model that answered its probabilities alone, naming its classes, crashed
    registration with a traceback (its 150 rows of 3 probabilities taken for 450 labels),
    and was watched, registered without a reference, as labels of its first column."""
    if signature.task != "classification":
        return
    output = signature.main_output
    if output is None:
        return
    declared = output.shape[1] if len(output.shape) == 2 else -1
    several = len(output.shape) > 2 or declared > 1 or (width is not None and width > 1)
    if not several:
        return
    values = declared if declared > 1 else width
    count = f" ({values})" if values else ""
    classes = f" {values}" if values else ""
    why = _why_classifier(signature)
    if signature.probabilities is output:
        fix = (
            f"its output {output.name!r} gives the probabilities of its{classes} classes a "
            "row, and it has no output of the label. Give it one, the class of the highest "
            "probability, "
            f"named {_names(LABEL_OUTPUTS)} (a .py model returns a dict of both and declares "
            "both outputs)"
        )
    else:
        fix = (
            f"its prediction {output.name!r} is several values{count} a row, and a "
            "classifier's is one label a row. Give it an output of its label, named "
            f"{_names(LABEL_OUTPUTS)}"
        )
    raise InvalidInput(f"the model is a classifier ({why}), but {fix}")


def _why_classifier(signature: Signature) -> str:
    if signature.extra.get("task") == "classification":
        return "its task is stated as classification"
    classes = list(signature.extra.get("classes") or ())
    shown = ", ".join(repr(c) for c in classes[:5]) + (", ..." if len(classes) > 5 else "")
    return f"it names its classes: {shown}" if classes else "its prediction is labels"


def _names(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


UNDECLARED_OUTPUT = (
    "the model declares no signature and no reference data was given, so registration could "
    "not ask it what it answers: its prediction 'predict' is taken for numbers (FP64) of a "
    "regression. If it answers labels (text, booleans or whole numbers of classes), they are "
    "not counted by class and labels of them are refused: register it with --reference "
    "(a few rows of its input), or declare its outputs in a `signature` attribute of its "
    'class (the datatype "BYTES" for text, "INT64" for classes of whole numbers)'
)
"""What registration says of a ``.py`` model whose prediction's kind it could not learn."""
