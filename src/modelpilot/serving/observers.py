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

EVENTS = ("request_finished", "batch_finished", "queue_left", "predicted", "cache_looked_up")


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
        requests: int,
        seconds: float,
    ) -> None:
        """One model call answered a batch of ``rows`` rows from ``requests`` requests in
        ``seconds`` (a request whose caller gave up during the call among them: the model
        did score it). A call that failed is not told: it scored nothing. When one request
        broke a batch, each call that then ran a request of it alone and answered is told."""

    def queue_left(self, model: str, version: str, queue_seconds: Sequence[float]) -> None:
        """Requests left the version's queue, each after waiting that long: for its batch to
        start, or until it timed out, its caller gave up, or the version went away."""

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
