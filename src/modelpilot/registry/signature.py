"""A model version's signature: the tensors it takes and gives, by protocol name and shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROBABILITY_OUTPUTS = ("predict_proba", "probabilities", "output_probability")
"""The names of a classifier's output of class probabilities, by who gives it: ModelPilot's
scikit-learn, XGBoost and LightGBM runtimes, skl2onnx, onnxmltools (with ``zipmap=False``)."""

LABEL_OUTPUTS = ("predict", "label", "output_label")
"""The names of a model's output of its prediction (a classifier's label), by who gives it:
ModelPilot's runtimes and ``.py`` models, skl2onnx, onnxmltools."""

TASKS = ("classification", "regression")
"""What a model's prediction is, which decides how it is watched: a class label (counted by
class, scored by accuracy, F1 and AUC) or a number (binned, scored by MAE and RMSE)."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output: protocol datatype (``FP64``, ``BYTES``...) and shape, -1 = any."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(
            name=str(data["name"]),
            datatype=str(data["datatype"]),
            shape=tuple(int(d) for d in data["shape"]),
        )


@dataclass(frozen=True, slots=True)
class Signature:
    """What a model version takes and gives.

    Tabular models have one 2-D input ``[-1, n_features]``; ``feature_names`` then names its
    columns, so that callers may send one named tensor (or record field) per feature instead.
    ``allow_nan`` says whether the model copes with missing values (trees in XGBoost and
    LightGBM do; most scikit-learn estimators do not).

    A table whose features differ in kind (numbers beside text, for a pipeline that encodes
    its categories itself) has ``feature_datatypes``: each feature's own datatype, ``FP64`` or
    ``BYTES``. Its one input is then a ``BYTES`` tensor of rows, and callers send one tensor
    per feature, each in its datatype (or records and rows to ``/predict``).
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    feature_names: tuple[str, ...] | None = None
    allow_nan: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    feature_datatypes: tuple[str, ...] | None = None

    @property
    def is_tabular(self) -> bool:
        """One 2-D input whose rows are samples and columns are features."""
        return len(self.inputs) == 1 and len(self.inputs[0].shape) == 2

    @property
    def n_features(self) -> int | None:
        """Column count of a tabular input (None if not tabular or not fixed)."""
        if not self.is_tabular:
            return None
        width = self.inputs[0].shape[1]
        return width if width > 0 else None

    @property
    def feature_inputs(self) -> tuple[TensorSpec, ...]:
        """The tensors a caller sends one per feature: each feature by name, a column of one
        value per row, ``[-1, 1]`` (``[rows]`` is taken as well)."""
        names = self.feature_names or ()
        kinds = self.feature_datatypes or (self.inputs[0].datatype,) * len(names)
        return tuple(TensorSpec(n, k, (-1, 1)) for n, k in zip(names, kinds, strict=True))

    @property
    def served_inputs(self) -> tuple[TensorSpec, ...]:
        """The inputs a v2 client sends, as the model's metadata lists them: one per feature
        for a table of features of different kinds (which cannot share one tensor), else the
        inputs as they are."""
        return self.feature_inputs if self.feature_datatypes else self.inputs

    @property
    def text_features(self) -> tuple[str, ...]:
        """The features that take text (``BYTES``), by name."""
        if not self.feature_datatypes:
            return ()
        pairs = zip(self.feature_names or (), self.feature_datatypes, strict=True)
        return tuple(name for name, kind in pairs if kind == "BYTES")

    def output(self, name: str) -> TensorSpec | None:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        return None

    @property
    def main_output(self) -> TensorSpec | None:
        """The output that is "the prediction": the first named as in ``LABEL_OUTPUTS``
        (``predict``, skl2onnx's ``label``...), else the first that is not the class
        probabilities (``probabilities``), else the first.

        The order of a graph's outputs means nothing: an ONNX classifier that listed its
        ``probabilities`` before its ``label`` was watched as a regressor of one target a
        class, and its class labels refused."""
        for name in LABEL_OUTPUTS:
            spec = self.output(name)
            if spec is not None:
                return spec
        probabilities = self.probabilities
        for spec in self.outputs:
            if spec is not probabilities:
                return spec
        return self.outputs[0] if self.outputs else None

    @property
    def task(self) -> str:
        """``classification`` or ``regression`` (see ``TASKS``): as ``extra["task"]`` says,
        where registration or the model stated it; else a classifier is a model that lists
        its classes or whose prediction is text, booleans or whole numbers.

        Whole numbers are a guess: a regressor may answer counts or prices in whole units,
        which were watched as one class per value until its owner could say otherwise
        (``register --task regression``, or a ``.py`` model's ``task`` attribute)."""
        stated = self.extra.get("task")
        if stated in TASKS:
            return str(stated)
        if "classes" in self.extra:
            return "classification"
        output = self.main_output
        if output is not None and (
            output.datatype in ("BYTES", "BOOL") or output.datatype.startswith(("INT", "UINT"))
        ):
            return "classification"
        return "regression"

    @property
    def probabilities(self) -> TensorSpec | None:
        """The output of a classifier's class probabilities, a row of them per sample, one
        column per class in the order of ``extra["classes"]``: the first output named as in
        ``PROBABILITY_OUTPUTS`` that holds two dimensions of floating-point numbers.

        Registration and the label monitor both ask this, so that a model's AUC is measured
        on the same output at registration and live (an ONNX classifier's ``probabilities``
        was once passed over by both, which looked for ``predict_proba`` alone)."""
        for name in PROBABILITY_OUTPUTS:
            spec = self.output(name)
            if spec is not None and spec.datatype.startswith("FP") and len(spec.shape) == 2:
                return spec
        return None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
            "feature_names": list(self.feature_names) if self.feature_names else None,
            "allow_nan": self.allow_nan,
            "extra": dict(self.extra),
        }
        if self.feature_datatypes:  # (absent from signatures stored before it existed)
            data["feature_datatypes"] = list(self.feature_datatypes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        names = data.get("feature_names")
        kinds = data.get("feature_datatypes")
        return cls(
            inputs=tuple(TensorSpec.from_dict(d) for d in data.get("inputs", [])),
            outputs=tuple(TensorSpec.from_dict(d) for d in data.get("outputs", [])),
            feature_names=tuple(str(n) for n in names) if names else None,
            allow_nan=bool(data.get("allow_nan", False)),
            extra=dict(data.get("extra") or {}),
            feature_datatypes=tuple(str(k) for k in kinds) if kinds else None,
        )
