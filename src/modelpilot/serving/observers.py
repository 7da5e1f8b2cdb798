"""What the engine tells whoever watches it; the monitoring layer listens.

The engine sits below monitoring, so it knows its observers only through this base class.
An observer overrides the events it wants; the engine calls only those (a request pays for
no event nobody listens to). Calls happen on the event loop after the work they describe and
must be cheap: count, append, return. An observer that raises is logged and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from modelpilot.registry.types import ModelVersion

EVENTS = ("request_finished", "batch_finished", "predicted", "cache_looked_up")


class InferenceObserver:
    def request_finished(
        self,
        model: str,
        version: str,
        transport: str,
        status: str,
        seconds: float,
        error: str | None,
    ) -> None:
        """One request is answered; ``status`` is ``ok`` or the error's HTTP status."""

    def batch_finished(
        self,
        model: str,
        version: str,
        rows: int,
        queue_seconds: Sequence[float],
        seconds: float,
    ) -> None:
        """One batch of ``rows`` rows ran in ``seconds`` (its model call, or the calls that
        ran its requests one by one when one of them broke it); each request in it had
        waited that long in the queue."""

    def predicted(
        self,
        version: ModelVersion,
        request_ids: Sequence[str],
        rows: Sequence[int],
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        """One model call answered ``request_ids``: ``inputs`` and ``outputs`` hold all their
        rows in order, ``rows[i]`` of them for request ``i`` (a result-cache hit is a call of
        one request).

        Told once per model call rather than per request, so that watching every prediction
        costs the event loop one call per batch. The arrays are not copied and must not be
        changed; keep references, work later.
        """

    def cache_looked_up(self, model: str, version: str, hit: bool, seconds: float) -> None:
        """The result cache was asked for one request's answer. ``seconds`` is the lookup's
        time on a hit, and the lookup's and the store's after the model call on a miss (as
        Triton counts ``cache_hit`` and ``cache_miss``)."""


def handlers(observers: Sequence[object], event: str) -> tuple[object, ...]:
    """The bound methods of ``observers`` for ``event``, leaving out the ones not overridden."""
    base = getattr(InferenceObserver, event)
    bound = []
    for observer in observers:
        method = getattr(type(observer), event, None)
        if method is not None and method is not base:
            bound.append(getattr(observer, event))
    return tuple(bound)
