"""scikit-learn models saved with joblib or pickle.

Loading a pickle runs code from the file. Servers load only artifacts from the registry, after
their sha256 matched the one recorded when the owner registered the file.
"""

from __future__ import annotations

import pickle
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.errors import (
    ArtifactError,
    InvalidInput,
    MissingExtra,
    ModelFailure,
    ModelPilotError,
    clipped,
)
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
        # The columns a table's rows carry text in: where the model's encoders learned text,
        # and what its signature says is text (an encoder this does not find).
        encoded = self.text_features()
        self._text = frozenset([*encoded, *(self.signature.text_features or ())])
        # (Of a stored signature only: registration infers one of numbers first.)
        self._numbers_only = _registered_as_numbers(signature, encoded) if signature else ()

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
        except (ImportError, AttributeError) as exc:
            # A pickle holds no code: it names each class by module and name, and unpickling
            # imports them. Classes of the script that saved it were __main__'s, of that
            # script's run; others are in modules this Python may lack (or have in a version
            # without that name).
            raise _unimportable_code(exc) from exc
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
        if isinstance(classes, list | tuple) and any(np.ndim(c) > 0 for c in classes):
            # A classifier of several targets (a MultiOutputClassifier, a forest fitted on
            # columns of labels) has one array of classes per target, and predict_proba gives
            # a list of arrays of as many widths: no one label tensor, no one row of
            # probabilities, no one prediction to watch for drift or score against a label.
            raise ArtifactError(
                f"the model ({type(self.model).__name__}) predicts {len(classes)} targets at "
                "once, each with classes of its own; ModelPilot serves classifiers of one "
                "target (a label and a row of probabilities per row): register one classifier "
                "per target (a MultiOutputClassifier keeps them in its estimators_)"
            )
        if classes is not None:
            classes = np.asarray(classes)
            outputs.append(TensorSpec("predict", label_datatype(classes), (-1,)))
            if self._has_proba:
                outputs.append(TensorSpec("predict_proba", "FP64", (-1, len(classes))))
        else:
            shape: tuple[int, ...] = (-1,)
            datatype = "INT64" if _labels_of_groups(self.model) else "FP64"
            if example is not None:
                shape, datatype = self._output_shape(example)
            outputs.append(TensorSpec("predict", datatype, shape))
        if example is not None:
            self._smoke_test(example)
        extra: dict[str, Any] = {"estimator": type(self.model).__name__}
        if classes is not None:
            extra["classes"] = [c.item() if isinstance(c, np.generic) else c for c in classes]
        elif outputs[0].datatype == "INT64" and (groups := _group_labels(self.model)):
            extra["classes"] = groups
        return Signature(
            inputs=inputs,
            outputs=tuple(outputs),
            feature_names=feature_names_for(self._columns, feature_names, n_features),
            allow_nan=self._allows_nan(),
            extra=extra,
        )

    def text_features(self) -> tuple[str, ...]:
        # Encoders fitted on text have categories of text: the columns they were given were
        # text (a zip code, an id with leading zeros). Which columns those were is followed
        # from the model's own inputs, through each ColumnTransformer's column lists and the
        # steps of each Pipeline: an encoder after an imputer was fitted on a bare array,
        # and knows no names of its own.
        found = _text_columns(self.model, self._columns)
        if self._columns is not None:  # (names inside the model that it is not sent)
            found = [name for name in found if name in self._columns]
        return tuple(dict.fromkeys(found))

    def _output_shape(self, example: np.ndarray) -> tuple[tuple[int, ...], str]:
        """The shape and datatype of what ``predict`` gives: numbers, or whole numbers (the
        clusters of KMeans, the 1 and -1 of IsolationForest)."""
        result = np.asarray(self.model.predict(self._frame(example[:2])))
        shape = (-1,) if result.ndim == 1 else (-1, *result.shape[1:])
        return shape, "INT64" if result.dtype.kind in "iu" else "FP64"

    def _smoke_test(self, example: np.ndarray) -> None:
        try:
            self.model.predict(self._frame(example[:2]))
        except Exception as exc:
            raise InvalidInput(
                f"the model cannot predict on the reference data: {clipped(str(exc))}"
            ) from exc

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

        if x.dtype.kind != "O":
            return pd.DataFrame(x, columns=self._columns, copy=False)
        # Rows of numbers beside text come as objects. The text stays objects, a missing one
        # as it came (NaN or None, as the model knows it: serving.inputs.missing_text), not
        # pandas' type of strings, which made None NaN where a column held some text, and
        # a column of NaN alone numbers. The numbers' columns become floats again, as the
        # model saw them when it was fitted.
        frame = pd.DataFrame(x, columns=self._columns, dtype=object, copy=False)
        numbers = [
            name
            for name in self._columns
            if name not in self._text
            and pd.api.types.infer_dtype(frame[name], skipna=True) in _NUMBERS
        ]
        return frame.astype(dict.fromkeys(numbers, np.float64)) if numbers else frame

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        if self._numbers_only:
            try:
                return self._predict(batch, outputs)
            except (TypeError, ValueError) as exc:
                raise ModelFailure(_registered_as_numbers_message(self._numbers_only)) from exc
        return self._predict(batch, outputs)

    def _predict(self, batch: Batch, outputs: Sequence[str]) -> dict[str, np.ndarray]:
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


_NUMBERS = frozenset(["floating", "integer", "mixed-integer-float", "decimal", "boolean", "empty"])
"""What ``infer_dtype`` calls a column of objects that holds numbers alone (or nothing but
missing values)."""


def _registered_as_numbers(signature: Signature, text: Sequence[str]) -> tuple[str, ...]:
    """The features the model encodes as text, where its ``signature`` says it takes one
    tensor of numbers (a version registered by a release before text features were served,
    whose every request fails: its text refused as no number, numbers failing in the
    model's encoder); else none."""
    if not text or not signature.is_tabular or signature.feature_datatypes:
        return ()
    if signature.inputs[0].datatype == "BYTES":
        return ()
    return tuple(text)


def _registered_as_numbers_message(text: Sequence[str]) -> str:
    return (
        f"the model encodes the features {list(text)} as text, but this version was "
        "registered as taking numbers only (by a release before text features were served): "
        "register the model file again (modelpilot register NAME FILE --reference DATA, "
        "with its training data), and serve the new version, which takes them as text"
    )


def _text_columns(part: Any, names: Sequence[str] | None) -> list[str]:
    """The columns among ``names`` (those ``part`` is given, in order; None where unknown)
    that ``part`` or an estimator inside it encodes as text."""
    if isinstance(getattr(part, "categories_", None), list):
        return _encoded_as_text(part, names)
    steps = getattr(part, "steps", None)
    if isinstance(steps, list):
        return _text_of_steps([step for _, step in steps], names)
    transformers = getattr(part, "transformers_", None)
    if isinstance(transformers, list):
        return _text_of_branches(part, transformers, names)
    listed = getattr(part, "transformer_list", None)
    if isinstance(listed, list):  # a FeatureUnion: each of its transformers gets every column
        return [n for _, each in listed if hasattr(each, "fit") for n in _text_columns(each, names)]
    return []


def _encoded_as_text(encoder: Any, names: Sequence[str] | None) -> list[str]:
    """The columns whose categories ``encoder`` learned as text: named as the model's inputs
    where their names reached it, else by the encoder's own (fitted on a DataFrame)."""
    categories = encoder.categories_
    if names is None or len(names) != len(categories):
        own = getattr(encoder, "feature_names_in_", None)
        names = [str(n) for n in own] if own is not None else None
    if names is None or len(names) != len(categories):
        return []
    return [
        name
        for name, values in zip(names, categories, strict=True)
        if any(isinstance(v, str) for v in np.asarray(values, dtype=object).ravel())
    ]


def _text_of_steps(steps: Sequence[Any], names: Sequence[str] | None) -> list[str]:
    """Of a Pipeline: each step is given what the one before it gave."""
    found: list[str] = []
    for step in steps:
        if not hasattr(step, "fit"):  # "passthrough" or None
            continue
        found += _text_columns(step, names)
        names = _columns_kept(step, names)
    return found


def _columns_kept(step: Any, names: Sequence[str] | None) -> list[str] | None:
    """The names of the columns ``step`` gives, if they are columns it was given (an imputer,
    a scaler, a selector keep theirs); else None: an encoder's columns are its codes."""
    if names is None:
        return None
    try:
        out = [str(n) for n in step.get_feature_names_out(list(names))]
    except (AttributeError, ValueError, TypeError):  # (NotFittedError is both of the first)
        return None
    return out if set(out) <= set(names) else None


def _text_of_branches(
    transformer: Any, branches: list[Any], names: Sequence[str] | None
) -> list[str]:
    """Of a fitted ColumnTransformer: each branch (its ``remainder`` too) is given the
    columns it names."""
    width = getattr(transformer, "n_features_in_", None)
    if names is None or len(names) != width:
        own = getattr(transformer, "feature_names_in_", None)
        names = [str(n) for n in own] if own is not None else None
    found: list[str] = []
    for branch in branches:
        if isinstance(branch, tuple) and len(branch) == 3 and hasattr(branch[1], "fit"):
            found += _text_columns(branch[1], _picked(branch[2], names))
    return found


def _picked(columns: Any, names: Sequence[str] | None) -> list[str] | None:
    """The names of the columns a ColumnTransformer gives one branch: chosen by name, by
    position, by slice or by boolean mask. A callable's choice (make_column_selector) is
    kept as names or positions once fitted; one that is not is unknown (None)."""
    if names is None or callable(columns):
        return None
    names = list(names)
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice):
        if isinstance(columns.start, str) or isinstance(columns.stop, str):  # (end included)
            start = names.index(columns.start) if columns.start is not None else 0
            stop = names.index(columns.stop) + 1 if columns.stop is not None else len(names)
            return names[start:stop]
        return names[columns]
    chosen = np.asarray(columns).reshape(-1)
    if chosen.dtype.kind == "b":
        return [name for name, keep in zip(names, chosen, strict=False) if keep]
    if chosen.dtype.kind in "iu":
        return [names[int(i)] for i in chosen]
    return [str(c) for c in chosen]


def _labels_of_groups(model: Any) -> bool:
    """Whether ``model`` predicts group labels, whole numbers: a clusterer's clusters, an
    outlier detector's 1 and -1 (a pipeline by its final step)."""
    from sklearn.base import is_clusterer, is_outlier_detector

    final = model.steps[-1][1] if isinstance(getattr(model, "steps", None), list) else model
    return bool(is_clusterer(final) or is_outlier_detector(final))


def _group_labels(model: Any) -> list[int] | None:
    """Every label a clusterer or outlier detector predicts, where the model knows them: an
    outlier detector's -1 and 1, the clusters 0 to k - 1 of a clusterer that keeps its
    centres (KMeans and its kin, MeanShift); None for others (DBSCAN predicts nothing).
    Named as its classes, they are counted by class on every worker alike; unnamed, a
    KMeans registered without a reference had every prediction counted as "(unknown)"."""
    from sklearn.base import is_clusterer, is_outlier_detector

    final = model.steps[-1][1] if isinstance(getattr(model, "steps", None), list) else model
    if is_outlier_detector(final):
        return [-1, 1]
    centers = getattr(final, "cluster_centers_", None)
    if is_clusterer(final) and callable(getattr(final, "predict", None)) and centers is not None:
        return list(range(len(centers)))
    return None


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


_NAME_NOT_FOUND = (
    re.compile(
        r"Can't (?:get attribute|resolve path) '(?P<name>[^']+)' on <?module '(?P<module>[^']+)'"
    ),
    re.compile(r"module '(?P<module>[^']+)' has no attribute '(?P<name>[^']+)'"),
)
"""What pickle says of a name its module lacks: up to Python 3.13, and from 3.14 on (of a
dotted name, and of a plain one)."""

_EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm"}
"""Libraries behind an extra whose scikit-learn estimators are saved with joblib."""


def _unimportable_code(exc: ImportError | AttributeError) -> ModelPilotError:
    """What to tell the owner of a pickle that refers to code this Python cannot import (said
    of "the model": the file is the stored artifact's, named by its hash, when a server loads
    it, and the caller names the version)."""
    if isinstance(exc, ImportError):
        module = exc.name or "?"
        package = module.partition(".")[0]
        if package in _EXTRAS:
            return MissingExtra(package, _EXTRAS[package])
        return ArtifactError(
            f"the model needs the module {module!r} to be unpickled, and this Python cannot "
            f"import it ({exc}): install the package that provides it, in the version the "
            "model was saved with, or add the folder that holds it to PYTHONPATH"
        )
    found = next((m for p in _NAME_NOT_FOUND if (m := p.search(str(exc)))), None)
    if found is None:
        return ArtifactError(
            f"the model could not be unpickled ({exc}): it refers to code that differs "
            "here from where it was saved; load it with the versions of its libraries it was "
            "saved with"
        )
    name, module = found["name"], found["module"]
    # The module's repr names the running program's __main__ as it was started: a script
    # "__main__", ``python -m pkg`` "pkg.__main__".
    main = sys.modules.get("__main__")
    if module in ("__main__", getattr(getattr(main, "__spec__", None), "name", "__main__")):
        return ArtifactError(
            f"the model refers to the class or function {name!r} of the script that saved "
            f"it (module __main__), which no other program can import: move {name!r} into a "
            "module of its own, import it from there in that script, save the model again, "
            "and make that module importable here (install it, or add its folder to "
            "PYTHONPATH)"
        )
    return ArtifactError(
        f"the model refers to {name!r} in the module {module!r}, which has no such name "
        f"here: install the version of {module.partition('.')[0]!r} that the model was saved "
        "with"
    )
