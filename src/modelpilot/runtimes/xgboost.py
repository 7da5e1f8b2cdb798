"""XGBoost models saved natively (``Booster.save_model``: .json or .ubj)."""

from __future__ import annotations

import json
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


class XGBoostRuntime(Runtime):
    """A native ``xgboost.Booster``; missing values are fine (trees route them)."""

    flavor = "xgboost"

    def __init__(self, booster: Any, signature: Signature | None, size: int) -> None:
        self.booster = booster
        self._size = size
        config = json.loads(booster.save_config())
        self.objective = str(config["learner"]["objective"]["name"])
        self.n_classes = int(config["learner"]["learner_model_param"].get("num_class", 0) or 0)
        self._n_features = int(booster.num_features())
        self.signature = signature or self.infer_signature()

    @classmethod
    def load(cls, path: Path, signature: Signature | None = None, **options: Any) -> Runtime:
        try:
            import xgboost
        except ImportError:
            raise MissingExtra("xgboost", "xgboost") from None
        booster = xgboost.Booster()
        try:
            # From its bytes, whose format XGBoost tells (JSON or UBJSON) without a warning:
            # from a path it goes by the suffix, and registry artifacts have none.
            booster.load_model(bytearray(path.read_bytes()))
        except xgboost.core.XGBoostError as exc:
            raise ArtifactError(f"{path.name} is not an XGBoost model: {exc}") from exc
        booster.set_param({"nthread": int(options.get("threads", 1))})
        return cls(booster, signature, path.stat().st_size)

    @property
    def _kind(self) -> str:
        if self.objective.startswith("binary:"):
            return BINARY
        if self.objective.startswith("multi:"):
            return MULTI
        return REGRESSION

    def infer_signature(
        self, example: np.ndarray | None = None, feature_names: Sequence[str] | None = None
    ) -> Signature:
        return booster_signature(
            self._kind,
            self.n_classes,
            self._n_features,
            self.booster.feature_names,
            example,
            feature_names,
        )

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        x = next(iter(batch.values()))
        raw = np.asarray(self.booster.inplace_predict(x), dtype=np.float64)
        return booster_outputs(self._kind, raw, outputs)

    @property
    def memory_bytes(self) -> int:
        return self._size
