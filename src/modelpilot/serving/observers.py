"""What the engine tells whoever watches it; the monitoring layer implements this.

The engine sits below monitoring, so it knows observers only through this protocol. Calls
happen on the event loop after the work they describe, and must be cheap: count, observe,
return. An observer that raises is logged and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from modelpilot.registry.types import ModelVersion


class InferenceObserver(Protocol):
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
        self, model: str, version: str, rows: int, queue_seconds: Sequence[float]
    ) -> None:
        """One model call ran ``rows`` rows; each request in it waited that long in the queue."""

    def inflight_changed(self, model: str, delta: int) -> None:
        """A request for ``model`` started (+1) or ended (-1)."""

    def predicted(
        self,
        version: ModelVersion,
        request_id: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        """A request was answered with ``outputs`` for ``inputs`` (both as the model saw them).

        The arrays are not copied and must not be changed; keep references, work later.
        """
