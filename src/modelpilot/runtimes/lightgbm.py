"""LightGBM models saved natively (``Booster.save_model``: a text file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.errors import ArtifactError, MissingExtra
from modelpilot.registry.signature import Signature
from modelpilot.runtimes.base import Batch, Runtime
from modelpilot.runtimes.boosters import (
    BINARY,
    MULTI,
    REGRESSION,
    booster_outputs,
    booster_signature,
)


class LightGBMRuntime(Runtime):
    """A native ``lightgbm.Booster``; missing values are fine."""

    flavor = "lightgbm"

    def __init__(self, booster: Any, signature: Signature | None, size: int) -> None:
        self.booster = booster
        self._size = size
        dump = booster.dump_model(num_iteration=1)
        self.objective = str(dump.get("objective", "regression")).split()[0]
        self.n_classes = int(dump.get("num_class", 1))
        names = dump.get("feature_names")
        # LightGBM calls unnamed columns Column_0, Column_1...; those are not real names.
        self._names = None if not names or names[0] == "Column_0" else names
        self._n_features = int(booster.num_feature())
        self.signature = signature or self.infer_signature()

    @classmethod
    def load(cls, path: Path, signature: Signature | None = None, **options: Any) -> Runtime:
        try:
            import lightgbm
        except ImportError:
            raise MissingExtra("lightgbm", "lightgbm") from None
        try:
            booster = lightgbm.Booster(model_file=str(path))
        except lightgbm.basic.LightGBMError as exc:
            raise ArtifactError(f"{path.name} is not a LightGBM model: {exc}") from exc
        return cls(booster, signature, path.stat().st_size)

    @property
    def _kind(self) -> str:
        if self.objective in ("binary", "cross_entropy"):
            return BINARY
        if self.objective in ("multiclass", "multiclassova", "softmax"):
            return MULTI
        return REGRESSION

    def infer_signature(
        self, example: np.ndarray | None = None, feature_names: Sequence[str] | None = None
    ) -> Signature:
        return booster_signature(
            self._kind, self.n_classes, self._n_features, self._names, example, feature_names
        )

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        x = next(iter(batch.values()))
        raw = np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)
        return booster_outputs(self._kind, raw, outputs)

    @property
    def memory_bytes(self) -> int:
        return self._size
