"""Which labels a quality window takes: one of a classifier's classes, or a regression's finite
numbers (one a target), checked as labels arrive so that a post that does not fit is refused."""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Collection, Sequence
from typing import Any

from modelpilot.registry.quality import as_class, label_key

MODELS_CLASSES = "the model's classes"


def regression_label(truth: Any, values: int = 1) -> float | tuple[float, ...]:
    """``truth`` as the label of a regression's row of ``values`` predicted values (its
    targets), or ValueError saying why it cannot be one: a finite JSON number, or for a row of
    several, a list of as many.

    Numbers written as text ("1.5") are refused: a slip in the client, as a label of the
    wrong kind is. A model of several targets takes a list of one number a target, in the
    order of its prediction's columns: a single number was scored against the first target
    alone, and exported as the model's error."""
    if values == 1:
        return _number(truth)
    if not isinstance(truth, (list, tuple)):
        raise ValueError(
            f"label {shown(truth)} is not a list of {values} numbers, as a regression of "
            f"{values} targets needs (one number a target, in the order of its prediction)"
        )
    if len(truth) != values:
        raise ValueError(
            f"label {shown(truth)} has {len(truth)} value(s); the model predicts {values} "
            "targets a row: send one number a target, in the order of its prediction"
        )
    return tuple(_number(value) for value in truth)


def _number(truth: Any) -> float:
    """``truth`` as one finite number (of any size), or ValueError."""
    if isinstance(truth, (int, float)) and not isinstance(truth, bool):
        try:
            value = float(truth)
        except OverflowError:  # an int past float64
            pass
        else:
            if math.isfinite(value):
                return value
    text = " (send a JSON number, not text)" if isinstance(truth, str) else ""
    raise ValueError(f"label {shown(truth)} is not a finite number, as a regression needs{text}")


def class_label(
    truth: Any,
    classes: Sequence[Any],
    known: Sequence[Any] = (),
    known_keys: Collection[str] = (),
    whose: str = MODELS_CLASSES,
) -> Any:
    """``truth`` as a label of a classifier of ``classes``, or ValueError saying why it cannot
    be one: a string or a number, compared as the metrics compare them (1, 1.0 and "1" are
    the same class; for a classifier of booleans, 1 and 0 and "true" and "false" are True
    and False, as scikit-learn reads them), and one of the ``known`` classes (by their
    ``label_key``, ``known_keys``) where they are known (``whose`` says where from, for the
    message); else any string or number."""
    if isinstance(truth, float) and not math.isfinite(truth):
        raise ValueError(f"label {shown(truth)} is not a class")
    if not isinstance(truth, (str, int, float)):  # bool is an int
        raise ValueError(f"label {shown(truth)} is not a class (a string or a number)")
    value = as_class(truth, classes)
    if known_keys and label_key(value) not in known_keys:
        raise ValueError(
            f"label {shown(truth)} is not one of {whose} ({listed(known)}); send one of those"
            + _normalization(label_key(value), known_keys)
        )
    return value


def _normalization(key: str, known_keys: Collection[str]) -> str:
    """Where label ``key`` is a class but for its Unicode normalization (an "è" sent as "e"
    and a combining accent), a note that says so: shown, the two look alike."""
    normal = unicodedata.normalize("NFC", key)
    for known in known_keys:
        if unicodedata.normalize("NFC", known) == normal:
            return (
                f" (it reads as {shown(known)} but is written with other Unicode characters, "
                "such as a letter and a combining accent for an accented letter: send the "
                "class's own characters)"
            )
    return ""


def known_labels(
    declared: list[Any], label_classes: Sequence[str], predicted: Sequence[Any]
) -> tuple[list[Any], str]:
    """The classes a classifier's label must be one of, and what they are (for a message):
    the model's own (``declared``, scikit-learn's ``classes_``); where it does not say, the
    classes of its reference labels (``label_classes``, as registration counted the
    ``--target`` column) and those it ``predicted`` on the reference data; else none (any
    string or number is taken).

    A model that does not list its classes took any label, and three typos ("banana", 3.7,
    true) among 35 iris labels halved its macro F1 and raised a critical concept drift,
    although its reference data named its three classes. ``label_classes`` are empty for a
    target of more classes than its profile names (``FeatureProfile.other``), as a label of
    the pooled rest would be refused; every one given is a class (a class named "__other__"
    too, which an in-band key once took for that pool, so that any label was taken)."""
    if declared or not label_classes:
        return declared, MODELS_CLASSES
    keys = dict.fromkeys([*label_classes, *(label_key(c) for c in predicted)])
    whose = "the classes of the reference data (its labels, and the model's predictions of it)"
    return sorted(as_written(list(keys)), key=_in_order), whose


def _in_order(value: Any) -> tuple[int, float, str]:
    """Numbers first, by value, then text, as a message lists classes."""
    if isinstance(value, (int, float)):
        return 0, float(value), ""
    return 1, 0.0, str(value)


def as_written(keys: Collection[str]) -> list[Any]:
    """Classes known by their text (``label_key``, as a reference profile counts them) as a
    client writes them in JSON: numbers as numbers ("2" is 2), the rest as text."""
    if set(keys) == {"False", "True"}:
        return [False, True]
    written: list[Any] = []
    for key in keys:
        try:
            number = int(key)
        except ValueError:
            try:
                value = float(key)
            except ValueError:
                written.append(key)
                continue
            written.append(value if math.isfinite(value) and label_key(value) == key else key)
            continue
        written.append(number if str(number) == key else key)
    return written


def shown(value: Any) -> str:
    """A label as the client wrote it in JSON (``true``, ``"setosa"``, ``1e+308``), cut
    short if long.

    Letters of any script as they are (``"très bon ✓"``): with JSON's ASCII escapes, the
    classes a refused label should have been read ``"tr\\u00e8s bon \\u2713"``. Control and
    format characters (a line break, an escape sequence, a bidirectional override) are still
    shown escaped (``"a\\nb"``), so that they cannot break the message or a terminal showing
    it. (A label that differs from a class only in its Unicode normalization looks like it:
    ``class_label`` says so.)"""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    text = "".join(_escaped(c) for c in text)
    return text if len(text) <= 80 else text[:77] + "..."


def _escaped(character: str) -> str:
    """``character`` as a message shows it: a control or format character (C0, DEL, C1, a
    bidirectional override, a line or paragraph separator) as its JSON escape, else itself.
    (JSON escapes C0 characters already.)"""
    if unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp"):
        return f"\\u{ord(character):04x}"
    return character


def listed(classes: Sequence[Any], most: int = 20) -> str:
    """``classes`` for an error message: the first ``most`` of them, and how many more."""
    text = ", ".join(shown(c) for c in classes[:most])
    if len(classes) > most:
        text += f" and {len(classes) - most} more"
    if {label_key(c) for c in classes} == {"False", "True"}:
        text += '; 1 and 0, "true" and "false" are read as them'
    return text
