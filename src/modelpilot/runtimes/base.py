"""The one small interface every model flavor implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelpilot.registry.signature import Signature

Batch = dict[str, np.ndarray]
"""Input tensors by name, batch dimension first, already in the signature's dtypes."""


def batch_rows(batch: Batch) -> int:
    """Rows in ``batch`` (its first tensor's first dimension; 0 for no tensors)."""
    return next(iter(batch.values())).shape[0] if batch else 0


class Runtime(ABC):
    """A loaded model of one flavor.

    ``predict`` runs on a whole batch and returns the named outputs asked for (all outputs of
    the signature when ``outputs`` is empty). It is called from worker threads, or on the
    event loop once its calls have proven to take microseconds (``serving.batcher``), and may
    be called concurrently: implementations must be thread-safe or guard themselves.
    """

    flavor: ClassVar[str]
    """Registry name of the flavor: ``sklearn``, ``onnx``, ``xgboost``, ``lightgbm``, ``python``."""

    signature: Signature

    takes_text: ClassVar[bool] = False
    """Whether a tabular model of this flavor takes rows whose features differ in kind
    (numbers beside strings), as a pipeline that encodes its categories itself does."""

    output_assumed: bool = False
    """Whether the signature's outputs are a default the model never stated (a ``.py`` model
    that declares no signature), to be learnt from its answers on an example, if one is given
    (``infer_signature``)."""

    def text_features(self) -> tuple[str, ...]:
        """The features the model was fitted on as text, by name, as far as the model itself
        tells: a reference CSV reads them as text even where they look like numbers."""
        return ()

    @classmethod
    @abstractmethod
    def load(cls, path: Path, signature: Signature | None = None, **options: Any) -> Runtime:
        """Load the artifact at ``path``; ``signature`` is the stored one, if any."""

    @abstractmethod
    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Run the model; every returned array has the batch size as its first dimension."""

    def infer_signature(
        self, example: np.ndarray | None = None, feature_names: Sequence[str] | None = None
    ) -> Signature:
        """Describe inputs and outputs, from the model itself and an optional example batch."""
        return self.signature

    @property
    def memory_bytes(self) -> int:
        """Estimated memory held by the loaded model, for the pool's budget."""
        return 0

    def close(self) -> None:
        """Release what the model holds (sessions, files); called on unload or eviction."""
        return None
