"""Delayed labels: matching each to the rows predicted for its request, and finding the
predictions of sibling workers that are still on their way to the shared inference log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
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
    monitor: ModelMonitor, request_id: str, label: Any, predicted: list[Any]
) -> list[tuple[Any, Any]]:
    """Each row's label beside what was predicted for it.

    A row's label is one value; of a regression of several targets (whose rows
    ``predicted_rows`` gives as tuples), a list of one number a target, which for a request
    of one row may come as it is (``[97.0, 51.5]``) or in a list of rows
    (``[[97.0, 51.5]]``).

    InvalidInput (422) when the labels do not fit the prediction: another number of labels
    than it had rows, or a label that is not one the model could have predicted (see
    ``PerformanceWindow.checked``). The message names the request, and the row of a list."""
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
    checked = []
    for row, truth in enumerate(truths):
        try:
            checked.append(monitor.performance.checked(truth, values))
        except ValueError as exc:
            where = f"request {request_id!r}" + (f" row {row}" if by_row else "")
            raise InvalidInput(f"{where}: {exc}") from None
    return list(zip(checked, predicted, strict=True))


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


@dataclass(frozen=True, slots=True)
class Joined:
    """One request's labels, checked, beside what was predicted for each of its rows."""

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
