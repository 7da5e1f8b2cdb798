"""scikit-learn models saved with joblib or pickle.

Loading a pickle runs code from the file. Servers load only artifacts from the registry, after
their sha256 matched the one recorded when the owner registered the file.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.errors import ArtifactError, InvalidInput
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.runtimes.base import Batch, Runtime
from modelpilot.runtimes.tabular import (
    check_example,
    feature_names_for,
    input_spec,
    label_datatype,
)


class SklearnRuntime(Runtime):
    """An estimator or pipeline with ``predict`` (and ``predict_proba`` for classifiers)."""

    flavor = "sklearn"
    takes_text = True

    def __init__(self, model: Any, signature: Signature | None = None, size: int = 0) -> None:
        if not hasattr(model, "predict"):
            raise ArtifactError(
                f"the file holds a {type(model).__name__}, which has no predict(); register an "
                "estimator or pipeline"
            )
        self.model = model
        self._size = size
        # Models fitted on DataFrames warn (and may misbehave) when given bare arrays.
        names = getattr(model, "feature_names_in_", None)
        self._columns = [str(n) for n in names] if names is not None else None
        self._has_proba = hasattr(model, "predict_proba")
        # A pipeline asked for labels and probabilities transforms its input once, not once
        # for each (what Pipeline.predict and .predict_proba each do first).
        self._head, self._tail = _split_pipeline(model)
        self.signature = signature or self.infer_signature()

    @classmethod
    def load(cls, path: Path, signature: Signature | None = None, **options: Any) -> Runtime:
        import joblib

        try:
            model = joblib.load(path)
        except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError) as exc:
            # What pickle says of bytes it cannot read is often no more than "0" (a KeyError).
            why = str(exc) if len(str(exc)) > 3 else f"{type(exc).__name__} {str(exc)!r}"
            if path.stat().st_size == 0:
                why = "it is empty"
            raise ArtifactError(f"{path.name} is not a joblib or pickle file ({why})") from exc
        size = path.stat().st_size
        return cls(model, signature, size)

    def infer_signature(
        self, example: np.ndarray | None = None, feature_names: Sequence[str] | None = None
    ) -> Signature:
        n_features = getattr(self.model, "n_features_in_", None)
        check_example(example, n_features)
        inputs = (input_spec(n_features, example),)
        outputs: list[TensorSpec] = []
        classes = getattr(self.model, "classes_", None)
        if classes is not None:
            classes = np.asarray(classes)
            outputs.append(TensorSpec("predict", label_datatype(classes), (-1,)))
            if self._has_proba:
                outputs.append(TensorSpec("predict_proba", "FP64", (-1, len(classes))))
        else:
            shape: tuple[int, ...] = (-1,)
            if example is not None:
                shape = self._output_shape(example)
            outputs.append(TensorSpec("predict", "FP64", shape))
        if example is not None:
            self._smoke_test(example)
        extra: dict[str, Any] = {"estimator": type(self.model).__name__}
        if classes is not None:
            extra["classes"] = [c.item() if isinstance(c, np.generic) else c for c in classes]
        return Signature(
            inputs=inputs,
            outputs=tuple(outputs),
            feature_names=feature_names_for(self._columns, feature_names, n_features),
            allow_nan=self._allows_nan(),
            extra=extra,
        )

    def text_features(self) -> tuple[str, ...]:
        # Encoders fitted on columns of a DataFrame know their names and their categories;
        # categories of text mean the column was text (a zip code, an id with leading zeros).
        found: list[str] = []
        for part in _parts(self.model):
            names = getattr(part, "feature_names_in_", None)
            categories = getattr(part, "categories_", None)
            if names is None or not isinstance(categories, list):
                continue
            for name, values in zip(names, categories, strict=False):
                if any(isinstance(v, str) for v in np.asarray(values, dtype=object).ravel()):
                    found.append(str(name))
        return tuple(dict.fromkeys(found))

    def _output_shape(self, example: np.ndarray) -> tuple[int, ...]:
        result = np.asarray(self.model.predict(self._frame(example[:2])))
        return (-1,) if result.ndim == 1 else (-1, *result.shape[1:])

    def _smoke_test(self, example: np.ndarray) -> None:
        try:
            self.model.predict(self._frame(example[:2]))
        except Exception as exc:
            raise InvalidInput(f"the model cannot predict on the reference data: {exc}") from exc

    def _allows_nan(self) -> bool:
        tags = getattr(self.model, "__sklearn_tags__", None)
        if tags is None:
            return False
        try:
            return bool(tags().input_tags.allow_nan)
        except Exception:
            return False

    def _frame(self, x: np.ndarray) -> Any:
        if self._columns is None or x.ndim != 2 or x.shape[1] != len(self._columns):
            return x
        import pandas as pd

        frame = pd.DataFrame(x, columns=self._columns, copy=False)
        # Rows of numbers beside text come as objects: the numbers' columns become floats
        # again, as the model saw them when it was fitted.
        return frame.infer_objects() if x.dtype.kind == "O" else frame

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        x = self._frame(next(iter(batch.values())))
        wanted = outputs or [spec.name for spec in self.signature.outputs]
        model = self.model
        if len(wanted) > 1 and self._head is not None:
            x, model = self._head.transform(x), self._tail
        result: dict[str, np.ndarray] = {}
        for name in wanted:
            if name == "predict":
                labels = np.asarray(model.predict(x))
                if labels.dtype.kind in "iu":
                    labels = labels.astype(np.int64, copy=False)
                result[name] = labels
            elif name == "predict_proba":
                result[name] = np.asarray(model.predict_proba(x), dtype=np.float64)
            else:
                raise InvalidInput(f"unknown output {name!r}; the model gives predict")
        return result

    @property
    def memory_bytes(self) -> int:
        if not self._size:
            self._size = len(pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL))
        return self._size


def _parts(model: Any) -> Iterator[Any]:
    """``model`` and the fitted estimators inside it: a Pipeline's steps, a ColumnTransformer's
    and a FeatureUnion's transformers, and theirs in turn."""
    yield model
    inner: list[Any] = []
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        inner += [step for _, step in steps]
    for attribute in ("transformers_", "transformer_list"):
        listed = getattr(model, attribute, None)
        if isinstance(listed, list):
            inner += [entry[1] for entry in listed if isinstance(entry, tuple) and len(entry) > 1]
    for part in inner:
        if hasattr(part, "fit"):  # not "drop" or "passthrough"
            yield from _parts(part)


def _split_pipeline(model: Any) -> tuple[Any, Any]:
    """A scikit-learn Pipeline's transforming steps and its final estimator, or (None, None)
    for anything else (or a pipeline of the estimator alone)."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        return None, None
    tail = model.steps[-1][1]
    if not (hasattr(tail, "predict") and hasattr(tail, "predict_proba")):
        return None, None
    return model[:-1], tail
