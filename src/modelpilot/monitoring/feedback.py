"""Delayed labels: matching each to the rows predicted for its request, and finding the
predictions of sibling workers that are still on their way to the shared inference log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.errors import InvalidInput
from modelpilot.monitoring.model_monitor import ModelMonitor
from modelpilot.monitoring.tap import Tap
from modelpilot.monitoring.tap_batches import Found

POLL_SECONDS = 0.1
"""How often labels for requests not found yet look again, while a sibling worker's round may
still be on its way to the shared inference log (``Monitor.sibling_seconds``)."""


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    accepted: int
    """Labels (rows) joined to a prediction."""
    unknown: list[str]
    """Request ids with no prediction on record (not logged, or from another model)."""


async def look_again(
    tap: Tap, model: str, request_ids: list[str], seconds: float
) -> dict[str, Found]:
    """The predictions of ``request_ids`` that reach ``tap``'s log within ``seconds``.

    The pauses are awaited on the event loop and only each lookup goes to a thread: waited
    out in a thread, each call held one of the loop's few executor threads for all of
    ``seconds``, and a dozen labels for ids not on record yet held up every other label post
    (and all other work sent to threads) for as long."""
    found: dict[str, Found] = {}
    deadline = time.monotonic() + seconds
    while request_ids and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        more = await asyncio.to_thread(tap.lookup, model, request_ids)
        found.update(more)
        request_ids = [i for i in request_ids if i not in more]
    return found


def label_pairs(
    monitor: ModelMonitor,
    request_id: str,
    label: Any,
    predicted: list[Any],
    checked: Callable[[Any, int], Any] | None = None,
) -> list[tuple[Any, Any]]:
    """Each row's label beside what was predicted for it.

    A row's label is one value; of a regression of several targets (whose rows
    ``predicted_rows`` gives as tuples), a list of one number a target, which for a request
    of one row may come as it is (``[97.0, 51.5]``) or in a list of rows
    (``[[97.0, 51.5]]``).

    InvalidInput (422) when the labels do not fit the prediction: another number of labels
    than it had rows, or a label that is not one the model could have predicted (see
    ``PerformanceWindow.checked``, or ``checked`` if given: the same, remembered). The
    message names the request, and the row of a list."""
    values = len(predicted[0]) if predicted and isinstance(predicted[0], tuple) else 1
    by_row = isinstance(label, list)
    if by_row and values > 1 and len(predicted) == 1:
        by_row = any(isinstance(value, list) for value in label)  # else one row's targets
    truths = label if by_row else [label]
    if len(truths) != len(predicted):
        each = f" of {values} values (targets)" if values > 1 else ""
        one = f"a list of {values} numbers" if values > 1 else "one label"
        raise InvalidInput(
            f"request {request_id!r} predicted {len(predicted)} row(s){each} but got "
            f"{len(truths)} label(s); send {one} per row (a list of them for several rows)"
        )
    check = monitor.performance.checked if checked is None else checked
    labels = []
    for row, truth in enumerate(truths):
        try:
            labels.append(check(truth, values))
        except ValueError as exc:
            where = f"request {request_id!r}" + (f" row {row}" if by_row else "")
            raise InvalidInput(f"{where}: {exc}") from None
    return list(zip(labels, predicted, strict=True))


def predicted_rows(monitor: ModelMonitor, outputs: Mapping[str, Any]) -> tuple[list[Any], Any]:
    """What was predicted for each row: a classifier's class (the main output's first
    column), a regression's value, or for a regression of several targets (several values a
    row) the row's values as a tuple, whose label is one number a target; and the
    probabilities (the output ``Signature.probabilities`` names, as registration measured
    AUC on), where the signature states the classes of their columns, as registration
    requires too.

    Without them the columns' classes are unknown: an ONNX classifier registered before its
    graph's classes were read was scored against the classes in the order its reference
    predictions counted them, and read AUC 0.244 where scikit-learn gives 0.756."""
    bins = monitor.predictions
    output = bins.output if bins is not None else next(iter(outputs))
    predicted = np.asarray(outputs[output], dtype=object)
    block = predicted.reshape(len(predicted), -1)
    if monitor.performance.task == "regression" and block.shape[1] > 1:
        values: list[Any] = [tuple(row) for row in block.tolist()]
    else:
        values = block[:, 0].tolist()
    signature = monitor.version.signature
    probabilities = signature.probabilities
    if probabilities is None or not signature.extra.get("classes"):
        return values, None
    return values, outputs.get(probabilities.name)


@dataclass(slots=True)
class Joined:
    """One request's labels, checked, beside what was predicted for each of its rows.
    (Not frozen: one is made for every label of a post, and a frozen one costs twice as
    much to make.)"""

    monitor: ModelMonitor
    request_id: str
    pairs: list[tuple[Any, Any]]
    """(label, prediction) of each row."""
    proba: Any

    def apply(self, at: float, count: bool = True) -> int:
        """Give the version's monitor these labels; returns how many. A label for a row
        labelled before replaces it; without ``count``, the labels total leaves them out."""
        for index, (truth, predicted) in enumerate(self.pairs):
            row_proba = None if self.proba is None else np.asarray(self.proba[index], dtype=float)
            key = (self.request_id, index)
            self.monitor.label(truth, predicted, row_proba, at, key, count)
        return len(self.pairs)


def join(monitor: ModelMonitor, request_id: str, label: Any, outputs: Mapping[str, Any]) -> Joined:
    """``label`` (of request ``request_id``) checked against the rows ``monitor``'s version
    predicted for it, ``outputs``; InvalidInput (422) if it does not fit them."""
    predicted, proba = predicted_rows(monitor, outputs)
    return Joined(monitor, request_id, label_pairs(monitor, request_id, label, predicted), proba)


def join_all(
    labels: Mapping[str, Any],
    found: Mapping[str, Found],
    version_monitor: Callable[[str, int], ModelMonitor],
) -> tuple[list[Joined], dict[str, Any], list[str]]:
    """``join`` of each of ``labels`` to its prediction ``found`` (the monitor of its
    version from ``version_monitor``), in their order; with the labels that matched, and
    the request ids that did not (no prediction found). The first that does not fit raises,
    as ``join`` does.

    As ``join`` one by one, but for the work each label repeated, in Python, while its
    thread held the interpreter lock against the event loop (a post of 50,000 labels held
    it 0.7-0.9 s in a tester's server; 0.3 s now): a version's predictions are read in a few
    NumPy calls (``_VersionRows``), and each distinct label is checked once (``_Checks``)."""
    by_version: dict[tuple[str, int], list[str]] = {}
    unknown: list[str] = []
    for request_id in labels:
        prediction = found.get(request_id)
        if prediction is None:
            unknown.append(request_id)
        else:
            by_version.setdefault((prediction.model, prediction.version), []).append(request_id)
    versions: dict[tuple[str, int], _VersionRows] = {}
    joined: list[Joined] = []
    matched: dict[str, Any] = {}
    for request_id, label in labels.items():
        prediction = found.get(request_id)
        if prediction is None:
            continue
        key = (prediction.model, prediction.version)
        rows = versions.get(key)
        if rows is None:  # at its first label, as one by one: its errors come in order
            monitor = version_monitor(*key)
            rows = versions[key] = _VersionRows(monitor, by_version[key], found)
        predicted, proba = rows.of(request_id)
        if len(predicted) == 1 and type(label) is not list and type(predicted[0]) is not tuple:
            # One row, one label: ``label_pairs``'s own case, the most common by far.
            try:
                pairs = [(rows.checks(label, 1), predicted[0])]
            except ValueError as exc:
                raise InvalidInput(f"request {request_id!r}: {exc}") from None
        else:
            pairs = label_pairs(rows.monitor, request_id, label, predicted, rows.checks)
        joined.append(Joined(rows.monitor, request_id, pairs, proba))
        matched[request_id] = label
    return joined, matched, unknown


class _VersionRows:
    """What one version predicted for each of the requests labelled, as ``predicted_rows``
    gives it: read together where every request's main output is an array of the same
    type and row shape (one concatenation, one conversion), else one by one, as each is
    asked for."""

    def __init__(self, monitor: ModelMonitor, request_ids: list[str], found: Mapping[str, Found]):
        self.monitor = monitor
        self.checks = _Checks(monitor.performance.checked)
        self._found = found
        self._rows: dict[str, tuple[list[Any], Any]] = {}
        bins = monitor.predictions
        if bins is not None:
            self._read(bins.output, request_ids)

    def of(self, request_id: str) -> tuple[list[Any], Any]:
        rows = self._rows.get(request_id)
        return (
            predicted_rows(self.monitor, self._found[request_id].outputs) if rows is None else rows
        )

    def _read(self, output: str, request_ids: list[str]) -> None:
        signature = self.monitor.version.signature
        probabilities = signature.probabilities
        classes = signature.extra.get("classes")
        name = probabilities.name if probabilities is not None and classes else None
        several = self.monitor.performance.task == "regression"
        arrays: dict[tuple[Any, ...], list[tuple[str, Mapping[str, Any], np.ndarray]]] = {}
        for request_id in request_ids:
            outputs = self._found[request_id].outputs
            predicted = outputs.get(output)
            if type(predicted) is list and predicted and _scalars(predicted):
                # A list of numbers or text (as the log gives it back): converted to objects
                # and back to a list, the same values, the same objects.
                proba = None if name is None else outputs.get(name)
                self._rows[request_id] = (predicted, proba)
            elif type(predicted) is np.ndarray and predicted.ndim and predicted.size:
                kind = (predicted.dtype, predicted.shape[1:])
                arrays.setdefault(kind, []).append((request_id, outputs, predicted))
            # else one by one, at its label (its error, if it has one, comes there)
        for group in arrays.values():
            # As ``np.asarray(output, dtype=object)`` converts each request's.
            block = np.concatenate([predicted for _, _, predicted in group]).astype(object)
            block = block.reshape(len(block), -1)
            if several and block.shape[1] > 1:
                values: list[Any] = [tuple(row) for row in block.tolist()]
            else:
                values = block[:, 0].tolist()
            start = 0
            for request_id, outputs, predicted in group:
                end = start + len(predicted)
                proba = None if name is None else outputs.get(name)
                self._rows[request_id] = (values[start:end], proba)
                start = end


_SCALARS = (int, float, str, bool)


def _scalars(values: list[Any]) -> bool:
    """Whether ``values`` are all plain numbers or strings (each a row's one value)."""
    if len(values) == 1:
        return type(values[0]) in _SCALARS
    return all(type(value) in _SCALARS for value in values)


class _Checks:
    """``PerformanceWindow.checked``, remembered for the labels it takes (by type and value;
    a float by its exact bits, so that -0.0 is not 0.0): the labels of a post are mostly a
    few classes, checked again and again."""

    def __init__(self, checked: Callable[[Any, int], Any]) -> None:
        self._checked = checked
        self._taken: dict[tuple[Any, ...], Any] = {}

    def __call__(self, truth: Any, values: int = 1) -> Any:
        kind = type(truth)
        if kind is str or kind is int or kind is bool:
            key: tuple[Any, ...] = (kind, truth, values)
        elif kind is float:
            key = (kind, truth.hex(), values)
        else:
            return self._checked(truth, values)
        taken = self._taken.get(key, _NONE)
        if taken is _NONE:
            taken = self._taken[key] = self._checked(truth, values)
        return taken


_NONE = object()
