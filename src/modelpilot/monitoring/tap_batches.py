"""What passes through a tap: the calls each round hands it (``Answered``, ``Call``), joined
by version into one array per name (``merge``, ``Merged``), and the predictions and labels it
finds again (``Found``, ``Relabelled``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

from modelpilot.registry.types import ModelVersion


class Answered(NamedTuple):
    """The requests one model call answered (as the engine told them), by name.

    The monitor queues the same fields as a plain tuple (a ``Call``): one is made on the
    event loop for every model call, and a named tuple costs several times as much to make.
    ``merge`` takes either."""

    at: float
    version: ModelVersion
    request_ids: Sequence[str]
    rows: Sequence[int]
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


Call = tuple[
    float,
    ModelVersion,
    Sequence[str],
    Sequence[int],
    Mapping[str, np.ndarray],
    Mapping[str, np.ndarray],
]
"""A call as the monitor queues it: an ``Answered``'s fields, in order, in a plain tuple."""


@dataclass(frozen=True, slots=True)
class Merged:
    """Calls of one version taken in together: all their requests and rows, in order."""

    version: ModelVersion
    request_ids: list[str]
    times: list[float]
    rows: list[int]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class Found:
    """A prediction that a label can join: its version and the request's own output rows."""

    model: str
    version: int
    outputs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Relabelled:
    """A label from the inference log, with the prediction it was joined to."""

    request_id: str
    label: Any
    at: float
    found: Found


def merge(calls: Sequence[Call]) -> list[Merged]:
    """``calls`` as few batches as can be: one per version and set of names, in order.

    Runs on the event loop once a round, over every call of the round, so the loops over
    calls are ``map``'s and NumPy's where they can be rather than Python statements.
    """
    groups: dict[tuple[Any, ...], list[Call]] = {}
    for call in calls:
        # The version by identity: the engine hands over its loaded version object, and a
        # reload's new object merely starts a batch of its own.
        key = (id(call[1]), *call[4], None, *call[5])
        group = groups.get(key)
        if group is None:
            group = groups[key] = []
        group.append(call)
    return [merged for group in groups.values() for merged in _merge(group)]


_AT, _IDS, _ROWS, _INPUTS, _OUTPUTS = (itemgetter(i) for i in (0, 2, 3, 4, 5))


def _merge(group: list[Call]) -> list[Merged]:
    """``group``'s calls as one: every input and output concatenated, requests in order.

    Calls whose arrays cannot be joined (rows of different shapes) stay apart.
    """
    _, version, _, _, first_inputs, first_outputs = group[0]
    if len(group) == 1:
        inputs, outputs = dict(first_inputs), dict(first_outputs)
    else:
        try:
            inputs = {
                n: np.concatenate(list(map(itemgetter(n), map(_INPUTS, group))))
                for n in first_inputs
            }
            outputs = {
                n: np.concatenate(list(map(itemgetter(n), map(_OUTPUTS, group))))
                for n in first_outputs
            }
        except ValueError:
            return [merged for call in group for merged in _merge([call])]
    ids = list(chain.from_iterable(map(_IDS, group)))
    rows = list(chain.from_iterable(map(_ROWS, group)))
    if len(ids) == len(group):  # one request per call
        times = list(map(_AT, group))
    else:  # each call's time once per request it answered
        times = list(chain.from_iterable(map(repeat, map(_AT, group), map(len, map(_IDS, group)))))
    return [Merged(version, ids, times, rows, inputs, outputs)]
